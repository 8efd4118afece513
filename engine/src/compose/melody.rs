//! Per-style melody writer: motifs, phrases with repetition and variation, chord tones on
//! strong beats, contour and range that suit the style.
//!
//! A melody is thought in scale degrees (degree 0 is the tonic, 7 the octave above), so every
//! note is in the key by construction. Each section kind gets one `Motif` (a rhythm and an
//! interval shape); phrases state it, repeat it, sequence it, invert it or answer it, and close
//! on a long, stable note. A section kind that returns (the chorus) sings the same notes again.

use super::SongRng;
use crate::music::{Chord, ChordTrack, Key, Meter, Mood, Note, Section, SectionKind, Stem, Style};
use rand::Rng;

/// Writes a key-relative melody over the form and chords (lead stem range).
pub fn write_melody(
    style: Style,
    mood: Mood,
    key: Key,
    meter: Meter,
    sections: &[Section],
    chords: &ChordTrack,
    rng: &mut SongRng,
) -> Vec<Note> {
    let total_steps =
        sections.iter().map(|s| s.end_bar()).max().unwrap_or(0) * meter.steps_per_bar();
    if total_steps == 0 {
        return Vec::new();
    }
    let writer = MelodyWriter {
        style,
        mood,
        key,
        meter,
        chords,
        idiom: Idiom::of(style, meter),
    };
    // Intros and outros leave the stage to the arrangement, unless the form has nothing else.
    let sung = |kind: SectionKind| {
        matches!(
            kind,
            SectionKind::Verse | SectionKind::Chorus | SectionKind::Bridge
        )
    };
    let any_sung = sections.iter().any(|s| s.bars > 0 && sung(s.kind));
    let last_sung = sections
        .iter()
        .rposition(|s| s.bars > 0 && (sung(s.kind) || !any_sung));
    let final_outro = sections
        .iter()
        .rposition(|s| s.bars > 0)
        .filter(|&i| any_sung && sections[i].kind == SectionKind::Outro);

    let mut motifs: Vec<(SectionKind, Motif)> = Vec::new();
    let mut written: Vec<(SectionKind, u32, Vec<Sung>)> = Vec::new();
    let mut notes: Vec<Note> = Vec::new();
    for (index, section) in sections.iter().enumerate() {
        if section.bars == 0 {
            continue;
        }
        let kind = if any_sung {
            section.kind
        } else {
            SectionKind::Verse
        };
        let ends_song = Some(index) == last_sung && final_outro.is_none();
        let is_outro_coda = Some(index) == final_outro;
        if !(sung(kind) || is_outro_coda) {
            continue;
        }
        // The coda of an outro borrows the chorus motif (or the verse's) for a last farewell.
        let motif_kind = if is_outro_coda {
            [SectionKind::Chorus, SectionKind::Verse, SectionKind::Bridge]
                .into_iter()
                .find(|k| motifs.iter().any(|(m, _)| m == k))
                .unwrap_or(SectionKind::Verse)
        } else {
            kind
        };
        let motif = match motifs.iter().find(|(k, _)| *k == motif_kind) {
            Some((_, m)) => m.clone(),
            None => {
                let m = writer.compose_motif(section.energy, rng);
                motifs.push((motif_kind, m.clone()));
                m
            }
        };
        let start = section.start_bar * meter.steps_per_bar();
        let mut line = if is_outro_coda {
            writer.write_coda(section, &motif, rng)
        } else if let Some((_, _, line)) = written
            .iter()
            .find(|(k, bars, _)| *k == kind && *bars == section.bars)
        {
            // The hook comes back as it was; only notes the new harmony would clash with move.
            writer.refit(line, start)
        } else {
            let line = writer.write_section(kind, section, &motif, rng);
            written.push((kind, section.bars, line.clone()));
            line
        };
        if ends_song {
            writer.close_song(&mut line, section);
        }
        for sung_note in &line {
            let at = start + sung_note.offset;
            notes.push(Note {
                start: at,
                duration: sung_note.duration,
                pitch: degree_pitch(key, sung_note.degree),
                velocity: writer.velocity(section.energy, at, sung_note.cadence, rng),
            });
        }
    }
    make_monophonic(&mut notes, total_steps);
    notes
}

/// One note of a section's line, in the section's own time and in scale degrees.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
struct Sung {
    offset: u32,
    duration: u32,
    degree: i32,
    cadence: bool,
}

/// A rhythm and an interval shape, one or two bars long: the seed every phrase grows from.
#[derive(Clone, Debug)]
struct Motif {
    span: u32,
    notes: Vec<MotifNote>,
    /// A second interval shape on the same rhythm: the "b" that answers the statement.
    answer: Vec<i32>,
    /// Scale steps the motif's anchor sits above (or below) the part's register centre.
    lift: i32,
}

#[derive(Clone, Copy, Debug)]
struct MotifNote {
    offset: u32,
    duration: u32,
    /// Scale steps from the previous note (the first note's is ignored: it is anchored).
    step: i32,
}

/// What a motif instance does inside a phrase.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Variation {
    Statement,
    Sequence(i32),
    Inversion,
    Answer,
    /// The phrase's close: the head of the motif, then a long stable note. `closed` lands on
    /// the tonic where the harmony allows, an open close on any stable chord tone.
    Cadence {
        closed: bool,
    },
}

/// One beat's rhythm figure.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Cell {
    /// Ties the previous note over this beat.
    Hold,
    Rest,
    Whole,
    Eighths,
    Sixteenths,
    Dotted,
    EighthSixteenths,
    Offbeat,
    QuarterEighth,
}

impl Cell {
    /// Onsets and lengths inside one beat of `beat` steps (4 in simple time, 6 in 6/8).
    fn rhythm(self, beat: u32) -> Vec<(u32, u32)> {
        let compound = beat == 6;
        match self {
            Cell::Hold | Cell::Rest => Vec::new(),
            Cell::Whole => vec![(0, beat)],
            Cell::Eighths if compound => vec![(0, 2), (2, 2), (4, 2)],
            Cell::Eighths => vec![(0, 2), (2, 2)],
            Cell::Sixteenths => (0..beat).map(|i| (i, 1)).collect(),
            Cell::Dotted if compound => vec![(0, 3), (3, 1), (4, 2)],
            Cell::Dotted => vec![(0, 3), (3, 1)],
            Cell::EighthSixteenths if compound => vec![(0, 2), (2, 1), (3, 1), (4, 2)],
            Cell::EighthSixteenths => vec![(0, 2), (2, 1), (3, 1)],
            Cell::Offbeat if compound => vec![(2, 2), (4, 2)],
            Cell::Offbeat => vec![(2, 2)],
            Cell::QuarterEighth if compound => vec![(0, 4), (4, 2)],
            Cell::QuarterEighth => vec![(0, 2), (2, 2)],
        }
    }
}

/// A style's melodic habits.
struct Idiom {
    cells: Vec<(Cell, f32)>,
    /// Interval sizes in scale steps with their weights (direction is chosen separately).
    steps: &'static [(i32, f32)],
    motif_bars: u32,
    /// Centre of the verse register, in scale degrees.
    centre: i32,
    /// Lowest and highest degree the line may use.
    range: (i32, i32),
    /// Chiptune runs spell the chord: every note is a chord tone.
    arpeggiate: bool,
    /// Jazz lines approach strong-beat targets from a step above and below.
    enclosures: bool,
    /// Silence at the end of a phrase, in steps: the singer's breath.
    breath: u32,
}

impl Idiom {
    fn of(style: Style, meter: Meter) -> Idiom {
        use Cell::*;
        let compound = meter == Meter::SixEight;
        let waltz = meter == Meter::ThreeFour;
        let beat = meter.steps_per_beat();
        match style {
            Style::Chiptune => Idiom {
                cells: vec![
                    (Sixteenths, 5.0),
                    (EighthSixteenths, 3.0),
                    (Eighths, 2.5),
                    (Whole, 0.8),
                    (Rest, 0.4),
                ],
                steps: &[(0, 1.0), (1, 4.0), (2, 4.0), (3, 1.0), (4, 0.6)],
                motif_bars: 1,
                centre: 4,
                range: (-2, 13),
                arpeggiate: true,
                enclosures: false,
                breath: 2,
            },
            Style::Ambient => Idiom {
                cells: vec![(Hold, 5.0), (Whole, 2.5), (Rest, 3.0), (Eighths, 0.3)],
                steps: &[(0, 1.0), (1, 4.0), (2, 3.0), (3, 0.8), (4, 0.4)],
                motif_bars: 2,
                centre: 4,
                range: (0, 12),
                arpeggiate: false,
                enclosures: false,
                breath: beat * 2,
            },
            Style::Lofi => Idiom {
                cells: vec![
                    (Eighths, 3.0),
                    (Offbeat, 2.0),
                    (EighthSixteenths, 1.2),
                    (Whole, 2.0),
                    (Rest, 2.0),
                    (Dotted, 1.0),
                    (Hold, 1.0),
                ],
                steps: &[(0, 2.0), (1, 5.0), (2, 2.0), (3, 1.0)],
                motif_bars: 1,
                centre: 3,
                range: (0, 11),
                arpeggiate: false,
                enclosures: false,
                breath: beat,
            },
            Style::Jazz => Idiom {
                cells: vec![
                    (Eighths, 6.0),
                    (Whole, 2.0),
                    (Offbeat, 1.5),
                    (Rest, 1.0),
                    (Hold, 0.5),
                    (Dotted, 0.5),
                ],
                steps: &[(0, 0.5), (1, 6.0), (2, 3.0), (3, 1.0)],
                motif_bars: 1,
                centre: 4,
                range: (-1, 12),
                arpeggiate: false,
                enclosures: true,
                breath: beat,
            },
            Style::Folk if compound => Idiom {
                cells: vec![
                    (Eighths, 6.0),
                    (QuarterEighth, 3.0),
                    (Whole, 1.0),
                    (Dotted, 0.7),
                ],
                steps: &[(0, 1.0), (1, 6.0), (2, 3.0), (3, 1.0), (4, 0.5)],
                motif_bars: 1,
                centre: 3,
                range: (-1, 11),
                arpeggiate: false,
                enclosures: false,
                breath: 2,
            },
            Style::Folk if waltz => Idiom {
                cells: vec![(Whole, 4.0), (Eighths, 3.0), (Hold, 1.0), (Dotted, 0.8)],
                steps: &[(0, 1.0), (1, 6.0), (2, 3.0), (3, 1.0), (4, 0.5)],
                motif_bars: 2,
                centre: 3,
                range: (-1, 11),
                arpeggiate: false,
                enclosures: false,
                breath: beat,
            },
            Style::Folk => Idiom {
                cells: vec![
                    (Eighths, 7.0),
                    (Whole, 1.5),
                    (EighthSixteenths, 1.0),
                    (Dotted, 1.0),
                ],
                steps: &[(0, 1.0), (1, 6.0), (2, 3.0), (3, 1.0), (4, 0.5)],
                motif_bars: 1,
                centre: 3,
                range: (-1, 11),
                arpeggiate: false,
                enclosures: false,
                breath: 2,
            },
            Style::Rock => Idiom {
                cells: vec![
                    (Eighths, 4.0),
                    (Whole, 3.0),
                    (Hold, 1.0),
                    (Rest, 1.0),
                    (Offbeat, 1.0),
                    (EighthSixteenths, 0.5),
                ],
                steps: &[(0, 2.0), (1, 5.0), (2, 2.0), (3, 1.0)],
                motif_bars: 1,
                centre: 3,
                range: (-1, 11),
                arpeggiate: false,
                enclosures: false,
                breath: beat,
            },
            Style::Cinematic => Idiom {
                cells: vec![
                    (Hold, 4.0),
                    (Whole, 3.0),
                    (Dotted, 1.0),
                    (Eighths, 1.0),
                    (Rest, 0.8),
                ],
                steps: &[(1, 4.0), (2, 2.0), (3, 1.5), (4, 1.0), (5, 1.0), (7, 0.7)],
                motif_bars: 2,
                centre: 4,
                range: (-3, 13),
                arpeggiate: false,
                enclosures: false,
                breath: beat,
            },
            Style::Synthwave => Idiom {
                cells: vec![
                    (Eighths, 4.0),
                    (Sixteenths, 1.5),
                    (EighthSixteenths, 1.5),
                    (Whole, 2.0),
                    (Offbeat, 1.0),
                    (Hold, 0.5),
                    (Rest, 1.0),
                ],
                steps: &[(0, 5.0), (1, 4.0), (2, 2.0), (3, 1.0)],
                motif_bars: 1,
                centre: 4,
                range: (0, 12),
                arpeggiate: false,
                enclosures: false,
                breath: beat,
            },
        }
    }
}

/// Everything a section's line is written against.
struct MelodyWriter<'a> {
    style: Style,
    mood: Mood,
    key: Key,
    meter: Meter,
    chords: &'a ChordTrack,
    idiom: Idiom,
}

impl MelodyWriter<'_> {
    /// Invents a motif: a rhythm beat by beat from the style's figures, then an arch-shaped
    /// interval contour (rising first, falling back) from its interval habits.
    fn compose_motif(&self, energy: f32, rng: &mut SongRng) -> Motif {
        let beat = self.meter.steps_per_beat();
        let beats = self.idiom.motif_bars * self.meter.beats_per_bar();
        let energy = energy.clamp(0.0, 1.0);
        // Quiet sections and calm moods breathe more; loud, bright ones fill in.
        let stillness = match self.mood {
            Mood::Calm | Mood::Sad | Mood::Dreamy => 1.4,
            Mood::Energetic | Mood::Happy | Mood::Epic => 0.7,
            _ => 1.0,
        };
        let weights: Vec<(Cell, f32)> = self
            .idiom
            .cells
            .iter()
            .map(|&(cell, w)| match cell {
                Cell::Rest => (cell, w * (1.5 - energy) * stillness),
                Cell::Sixteenths | Cell::EighthSixteenths => (cell, w * (0.5 + energy)),
                _ => (cell, w),
            })
            .collect();
        let mut rhythm: Vec<(u32, u32)> = Vec::new();
        for b in 0..beats {
            let mut cell = pick_weighted(&weights, rng).unwrap_or(Cell::Whole);
            if b == 0 && matches!(cell, Cell::Hold | Cell::Rest) {
                // A motif speaks on its downbeat (the lofi off-beat entry aside).
                cell = Cell::Whole;
            }
            let at = b * beat;
            if cell == Cell::Hold {
                if let Some(last) = rhythm.last_mut().filter(|l| l.0 + l.1 == at) {
                    last.1 += beat;
                }
                continue;
            }
            rhythm.extend(cell.rhythm(beat).into_iter().map(|(o, d)| (at + o, d)));
        }
        if rhythm.is_empty() {
            rhythm.push((0, beat));
        }
        let contour = |rng: &mut SongRng| -> Vec<i32> {
            let n = rhythm.len();
            (0..n)
                .map(|i| {
                    if i == 0 {
                        return 0;
                    }
                    let size = pick_weighted(self.idiom.steps, rng).unwrap_or(1);
                    let rising = if (i as f32) < n as f32 * 0.55 {
                        0.62
                    } else {
                        0.35
                    };
                    if rng.random::<f32>() < rising {
                        size
                    } else {
                        -size
                    }
                })
                .collect()
        };
        let steps = contour(rng);
        let answer = contour(rng);
        Motif {
            span: self.idiom.motif_bars * self.meter.steps_per_bar(),
            notes: rhythm
                .into_iter()
                .zip(steps)
                .map(|((offset, duration), step)| MotifNote {
                    offset,
                    duration,
                    step,
                })
                .collect(),
            answer,
            // Where in the register this part's tune starts, so not every part opens alike.
            lift: rng.random_range(-1..=1),
        }
    }

    /// The register a part sings in: a chorus sits higher than a verse to lift.
    fn centre(&self, kind: SectionKind) -> i32 {
        let lift = match kind {
            SectionKind::Chorus => 2,
            SectionKind::Bridge => 1,
            _ => 0,
        };
        let mood = match self.mood {
            Mood::Sad | Mood::Dark => -1,
            Mood::Epic | Mood::Energetic => 1,
            _ => 0,
        };
        (self.idiom.centre + lift + mood).clamp(self.idiom.range.0 + 2, self.idiom.range.1 - 2)
    }

    /// Writes a whole section: phrases of (up to) four bars, antecedent and consequent.
    fn write_section(
        &self,
        kind: SectionKind,
        section: &Section,
        motif: &Motif,
        rng: &mut SongRng,
    ) -> Vec<Sung> {
        let bar = self.meter.steps_per_bar();
        let phrase_bars = 4u32;
        let centre = self.centre(kind) + motif.lift;
        let mut line: Vec<Sung> = Vec::new();
        let mut voice = Voice::default();
        let phrases = section.bars.div_ceil(phrase_bars);
        for p in 0..phrases {
            let first_bar = p * phrase_bars;
            let bars = phrase_bars.min(section.bars - first_bar);
            let last = p + 1 == phrases;
            // Odd phrases answer the even ones and close; the section always closes.
            let closed = last || p % 2 == 1;
            let anchor = centre + if p == 2 { 1 } else { 0 };
            let plan = self.phrase_plan(kind, bars, closed, rng);
            let mut at = first_bar * bar;
            let phrase_end = (first_bar + bars) * bar;
            for variation in plan {
                let span = motif.span.min(phrase_end - at);
                if span == 0 {
                    break;
                }
                let start_of_section = section.start_bar * bar;
                self.realise(
                    motif,
                    variation,
                    anchor,
                    start_of_section,
                    at,
                    span,
                    false,
                    &mut voice,
                    &mut line,
                    rng,
                );
                at += span;
            }
        }
        line
    }

    /// The motif instances of one phrase: statement, development, contrast, close.
    fn phrase_plan(
        &self,
        kind: SectionKind,
        bars: u32,
        closed: bool,
        rng: &mut SongRng,
    ) -> Vec<Variation> {
        let units = bars.div_ceil(self.idiom.motif_bars).max(1) as usize;
        let cadence = Variation::Cadence { closed };
        let riff = self.style == Style::Rock && kind == SectionKind::Chorus;
        let development = if riff {
            Variation::Statement
        } else if rng.random::<f32>() < 0.5 {
            Variation::Sequence(if rng.random::<f32>() < 0.5 { 1 } else { -1 })
        } else {
            Variation::Statement
        };
        let contrast = if riff || rng.random::<f32>() < 0.5 {
            Variation::Answer
        } else {
            Variation::Inversion
        };
        let mut plan = match units {
            1 => vec![cadence],
            2 => vec![Variation::Statement, cadence],
            3 => vec![Variation::Statement, development, cadence],
            _ => vec![Variation::Statement, development, contrast, cadence],
        };
        while plan.len() < units {
            plan.insert(plan.len() - 1, Variation::Sequence(1));
        }
        plan
    }

    /// Sings one motif instance into the line, fitting it to the chords underneath.
    #[allow(clippy::too_many_arguments)]
    fn realise(
        &self,
        motif: &Motif,
        variation: Variation,
        anchor: i32,
        section_start: u32,
        at: u32,
        span: u32,
        ends_song: bool,
        voice: &mut Voice,
        line: &mut Vec<Sung>,
        rng: &mut SongRng,
    ) {
        let bar = self.meter.steps_per_bar();
        let beat = self.meter.steps_per_beat();
        let (cut, closing) = match variation {
            Variation::Cadence { closed } => {
                // The close lands on the last downbeat of a long unit, else on the mid-bar
                // strong beat (a waltz bar closes on its downbeat with a dotted half).
                let cut = if span > bar {
                    span - bar
                } else if self.meter == Meter::ThreeFour || span < bar {
                    0
                } else {
                    bar / 2
                };
                (cut, Some(closed))
            }
            _ => (span, None),
        };
        let anchor = match variation {
            Variation::Sequence(shift) => anchor + shift,
            _ => anchor,
        };
        let first_new = line.len();
        for (i, note) in motif.notes.iter().enumerate() {
            if note.offset >= cut {
                break;
            }
            let offset = at + note.offset;
            let duration = note.duration.min(at + cut - offset).max(1);
            let step = match variation {
                Variation::Inversion => -note.step,
                Variation::Answer => motif.answer.get(i).copied().unwrap_or(note.step),
                _ => note.step,
            };
            let abs = section_start + offset;
            let chord = self.chords.at_step(self.meter, abs);
            let strong = self.is_strong(abs) || duration >= beat;
            let target = if i == 0 {
                anchor
            } else {
                voice.last.map_or(anchor, |p| p + step)
            };
            let degree = voice.next_degree(target, i == 0, strong, chord, self);
            line.push(Sung {
                offset,
                duration,
                degree,
                cadence: false,
            });
        }
        if self.idiom.enclosures {
            self.enclose(line, first_new, section_start, rng);
        }
        if let Some(closed) = closing {
            let offset = at + cut;
            let held = span - cut;
            let duration = if ends_song || held <= self.idiom.breath + 1 {
                held
            } else {
                held - self.idiom.breath
            };
            let chord = self.chords.at_step(self.meter, section_start + offset);
            // After a leap the close turns back; otherwise it sighs downwards.
            let resolving = voice.last_move.abs() >= 3;
            let direction = if resolving {
                -voice.last_move.signum()
            } else {
                -1
            };
            let degree = self.cadence_degree(
                voice.last.unwrap_or(anchor),
                direction,
                resolving,
                closed || ends_song,
                chord,
            );
            voice.land(degree);
            line.push(Sung {
                offset,
                duration: duration.max(1),
                degree,
                cadence: true,
            });
        }
    }

    /// Jazz enclosure: the two short notes before a strong-beat chord tone circle it from a
    /// scale step above and below, so the line "targets" the harmony.
    fn enclose(&self, line: &mut [Sung], from: usize, section_start: u32, rng: &mut SongRng) {
        for i in (from + 2)..line.len() {
            let (a, b, t) = (line[i - 2], line[i - 1], line[i]);
            let tight = a.offset + a.duration == b.offset && b.offset + b.duration == t.offset;
            if tight
                && b.duration <= 2
                && self.is_strong(section_start + t.offset)
                && rng.random::<f32>() < 0.4
            {
                line[i - 2].degree = self.clamp(t.degree + 1);
                line[i - 1].degree = self.clamp(t.degree - 1);
            }
        }
    }

    /// The note a phrase comes to rest on: the tonic where the chord holds it (a closed
    /// cadence), otherwise the nearest chord tone, searched first in `direction`.
    fn cadence_degree(
        &self,
        from: i32,
        direction: i32,
        resolving: bool,
        closed: bool,
        chord: Option<Chord>,
    ) -> i32 {
        let (lo, hi) = self.idiom.range;
        let fits = |d: i32| {
            (lo..=hi).contains(&d)
                && chord.is_none_or(|c| c.contains_relative(degree_pitch(self.key, d)))
        };
        if closed {
            let tonic_fits = chord.is_none_or(|c| c.contains_relative(0));
            if tonic_fits {
                let below = from.div_euclid(7) * 7;
                let candidates = [below, below + 7, below - 7];
                if let Some(&d) = candidates
                    .iter()
                    .filter(|&&d| (lo..=hi).contains(&d))
                    .min_by_key(|&&d| (d - from).abs())
                {
                    return d;
                }
            }
        }
        if resolving {
            // After a leap the close fills the gap: a step or a third back.
            if let Some(d) = [from + direction, from + 2 * direction]
                .into_iter()
                .find(|&d| fits(d))
            {
                return d;
            }
        }
        for distance in 0..=4 {
            for d in [from + distance * direction, from - distance * direction] {
                if fits(d) {
                    return d;
                }
            }
        }
        self.clamp(from)
    }

    /// The song's last phrase comes home: its final note becomes the tonic nearest to it and
    /// rings to the end of the song.
    fn close_song(&self, line: &mut [Sung], section: &Section) {
        let end = section.bars * self.meter.steps_per_bar();
        let (lo, hi) = self.idiom.range;
        if let Some(last) = line.last_mut() {
            let below = last.degree.div_euclid(7) * 7;
            last.degree = [below, below + 7, below - 7]
                .into_iter()
                .filter(|d| (lo..=hi).contains(d))
                .min_by_key(|d| (d - last.degree).abs())
                .unwrap_or(0);
            last.duration = end.saturating_sub(last.offset).max(1);
            last.cadence = true;
        }
    }

    /// The last farewell in an outro: the motif's head and a long tonic at the very end.
    fn write_coda(&self, section: &Section, motif: &Motif, rng: &mut SongRng) -> Vec<Sung> {
        let bar = self.meter.steps_per_bar();
        let bars = section
            .bars
            .min(2 * self.idiom.motif_bars)
            .min(section.bars);
        let first_bar = section.bars - bars;
        let mut line = Vec::new();
        let mut voice = Voice::default();
        let centre = self.centre(SectionKind::Verse);
        let plan = if bars > self.idiom.motif_bars {
            vec![Variation::Statement, Variation::Cadence { closed: true }]
        } else {
            vec![Variation::Cadence { closed: true }]
        };
        let mut at = first_bar * bar;
        let end = section.bars * bar;
        let count = plan.len();
        for (i, variation) in plan.into_iter().enumerate() {
            let span = if i + 1 == count {
                end - at
            } else {
                motif.span.min(end - at)
            };
            self.realise(
                motif,
                variation,
                centre,
                section.start_bar * bar,
                at,
                span,
                true,
                &mut voice,
                &mut line,
                rng,
            );
            at += span;
        }
        line
    }

    /// A stored line sung again over (possibly slightly different) chords: strong-beat notes
    /// that no longer belong to the chord move to the nearest one that does.
    fn refit(&self, line: &[Sung], section_start: u32) -> Vec<Sung> {
        let beat = self.meter.steps_per_beat();
        line.iter()
            .map(|n| {
                let abs = section_start + n.offset;
                let chord = self.chords.at_step(self.meter, abs);
                let strong = self.is_strong(abs) || n.duration >= beat;
                let fits =
                    chord.is_none_or(|c| c.contains_relative(degree_pitch(self.key, n.degree)));
                if strong && !fits {
                    Sung {
                        degree: self.nearest_chord_tone(n.degree, 1, chord),
                        ..*n
                    }
                } else {
                    *n
                }
            })
            .collect()
    }

    /// Downbeats, the mid-bar beat in 4/4, and both dotted-quarter beats in 6/8.
    fn is_strong(&self, step: u32) -> bool {
        let position = step % self.meter.steps_per_bar();
        match self.meter {
            Meter::FourFour => position == 0 || position == 8,
            Meter::ThreeFour => position == 0,
            Meter::SixEight => position == 0 || position == 6,
        }
    }

    fn clamp(&self, degree: i32) -> i32 {
        degree.clamp(self.idiom.range.0, self.idiom.range.1)
    }

    /// The chord tone nearest a degree, searching first in `direction` (+1 up, -1 down).
    fn nearest_chord_tone(&self, degree: i32, direction: i32, chord: Option<Chord>) -> i32 {
        let Some(chord) = chord else {
            return self.clamp(degree);
        };
        let (lo, hi) = self.idiom.range;
        for distance in 0..=4 {
            for d in [degree + distance * direction, degree - distance * direction] {
                if (lo..=hi).contains(&d) && chord.contains_relative(degree_pitch(self.key, d)) {
                    return d;
                }
            }
        }
        self.clamp(degree)
    }

    /// The first chord tone strictly beyond `from` in a direction: one step of an arpeggio.
    fn next_chord_tone(&self, from: i32, direction: i32, chord: Option<Chord>) -> i32 {
        let Some(chord) = chord else {
            return self.clamp(from + direction);
        };
        let (lo, hi) = self.idiom.range;
        for distance in 1..=4 {
            let d = from + distance * direction;
            if (lo..=hi).contains(&d) && chord.contains_relative(degree_pitch(self.key, d)) {
                return d;
            }
        }
        self.nearest_chord_tone(from - direction, -direction, Some(chord))
    }

    /// Louder with the section's energy, accented on the strong beats, softer on phrase ends.
    fn velocity(&self, energy: f32, step: u32, cadence: bool, rng: &mut SongRng) -> u8 {
        let base = 52.0 + 48.0 * energy.clamp(0.0, 1.0);
        let position = step % self.meter.steps_per_bar();
        let accent = if position == 0 {
            12.0
        } else if self.is_strong(step) {
            7.0
        } else if position.is_multiple_of(self.meter.steps_per_beat()) {
            3.0
        } else {
            -4.0
        };
        let taper = if cadence { -4.0 } else { 0.0 };
        let jitter = rng.random_range(-3..=3) as f32;
        (base + accent + taper + jitter).round().clamp(1.0, 127.0) as u8
    }
}

/// The line's memory while it is written: where it is and how it got there.
#[derive(Default)]
struct Voice {
    last: Option<i32>,
    /// The last interval in scale steps, to resolve leaps.
    last_move: i32,
}

impl Voice {
    /// Chooses the next degree: the motif's wish, folded back into range, a leap answered by a
    /// step the other way, and a chord tone wherever the beat is strong.
    fn next_degree(
        &mut self,
        wish: i32,
        anchored: bool,
        strong: bool,
        chord: Option<Chord>,
        writer: &MelodyWriter,
    ) -> i32 {
        let (lo, hi) = writer.idiom.range;
        let mut degree = wish;
        let mut direction = 1;
        if let Some(prev) = self.last {
            if self.last_move.abs() >= 3 {
                // After a leap, a step back the other way fills the gap the leap left.
                direction = -self.last_move.signum();
                degree = prev + direction;
            } else if degree != prev {
                direction = (degree - prev).signum();
            }
            if degree > hi || degree < lo {
                // Turn the contour around rather than leave the singer's range.
                degree = prev - (degree - prev);
                direction = -direction;
            }
        }
        degree = degree.clamp(lo, hi);
        let resolving = self.last.is_some() && self.last_move.abs() >= 3;
        if resolving && strong && !writer.idiom.arpeggiate {
            // A strong beat after a leap: the chord tone a step or a third back, so the gap
            // is filled rather than the leap's note merely repeated.
            let prev = self.last.unwrap_or(degree);
            let back = [prev + direction, prev + 2 * direction, prev];
            degree = back
                .into_iter()
                .find(|&d| {
                    (lo..=hi).contains(&d)
                        && chord.is_none_or(|c| c.contains_relative(degree_pitch(writer.key, d)))
                })
                .unwrap_or_else(|| writer.nearest_chord_tone(degree, direction, chord));
        } else if writer.idiom.arpeggiate && !anchored {
            if let Some(prev) = self.last {
                // Each motif step becomes one chord tone of the arpeggio, turning at the edges
                // of the range like a run on a keyboard.
                degree = if wish == prev {
                    writer.nearest_chord_tone(prev, 1, chord)
                } else {
                    writer.next_chord_tone(prev, direction, chord)
                };
            }
        } else if strong || anchored {
            degree = writer.nearest_chord_tone(degree, direction, chord);
        }
        self.land(degree);
        degree
    }

    fn land(&mut self, degree: i32) {
        self.last_move = self.last.map_or(0, |p| degree - p);
        self.last = Some(degree);
    }
}

/// Key-relative pitch of a scale degree (degree 7 is the octave above the tonic).
fn degree_pitch(key: Key, degree: i32) -> i32 {
    let intervals = key.mode.intervals();
    degree.div_euclid(7) * 12 + i32::from(intervals[degree.rem_euclid(7) as usize])
}

/// A weighted choice from a small table, drawing once from the song's rng.
fn pick_weighted<T: Copy>(table: &[(T, f32)], rng: &mut SongRng) -> Option<T> {
    let total: f32 = table.iter().map(|&(_, w)| w.max(0.0)).sum();
    if total <= 0.0 {
        return table.first().map(|&(t, _)| t);
    }
    let mut roll = rng.random::<f32>() * total;
    for &(item, weight) in table {
        roll -= weight.max(0.0);
        if roll < 0.0 {
            return Some(item);
        }
    }
    table.last().map(|&(t, _)| t)
}

/// Sorts, keeps notes inside the song and the lead's range, and trims overlaps: one voice.
fn make_monophonic(notes: &mut Vec<Note>, total_steps: u32) {
    let (low, rows) = Stem::Lead.pitch_range();
    let high = low + rows as i32 - 1;
    notes.retain(|n| n.start < total_steps && (low..=high).contains(&n.pitch));
    notes.sort_by_key(|n| (n.start, n.pitch));
    notes.dedup_by_key(|n| n.start);
    for i in 0..notes.len() {
        let limit = notes.get(i + 1).map_or(total_steps, |next| next.start);
        let note = &mut notes[i];
        note.duration = note.duration.min(limit - note.start).max(1);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::compose::progression::write_progression;
    use crate::music::Mode;
    use rand::SeedableRng;

    fn form(plan: &[(SectionKind, u32, f32)]) -> Vec<Section> {
        let mut start = 0;
        plan.iter()
            .map(|&(kind, bars, energy)| {
                let s = Section {
                    kind,
                    start_bar: start,
                    bars,
                    energy,
                };
                start += bars;
                s
            })
            .collect()
    }

    /// intro 4, verse 8, chorus 8, verse 8, chorus 8, outro 4.
    fn pop_form() -> Vec<Section> {
        form(&[
            (SectionKind::Intro, 4, 0.3),
            (SectionKind::Verse, 8, 0.5),
            (SectionKind::Chorus, 8, 0.8),
            (SectionKind::Verse, 8, 0.55),
            (SectionKind::Chorus, 8, 0.9),
            (SectionKind::Outro, 4, 0.3),
        ])
    }

    const MODES: [Mode; 4] = [Mode::Major, Mode::Minor, Mode::Dorian, Mode::Mixolydian];

    fn song(
        style: Style,
        key: Key,
        meter: Meter,
        sections: &[Section],
        seed: u64,
    ) -> (ChordTrack, Vec<Note>) {
        let mut rng = SongRng::seed_from_u64(seed);
        let chords = write_progression(style, Mood::Calm, key, meter, sections, &mut rng);
        let melody = write_melody(style, Mood::Calm, key, meter, sections, &chords, &mut rng);
        (chords, melody)
    }

    /// A shorter form with odd lengths and a bridge: intro 2, verse 6, chorus 4, bridge 3,
    /// chorus 4, outro 1.
    fn bridge_form() -> Vec<Section> {
        form(&[
            (SectionKind::Intro, 2, 0.2),
            (SectionKind::Verse, 6, 0.4),
            (SectionKind::Chorus, 4, 0.9),
            (SectionKind::Bridge, 3, 0.6),
            (SectionKind::Chorus, 4, 1.0),
            (SectionKind::Outro, 1, 0.2),
        ])
    }

    fn every_song(mut check: impl FnMut(Style, Key, Meter, &[Section], &ChordTrack, &[Note])) {
        for sections in [pop_form(), bridge_form()] {
            every_song_in(&sections, &mut check);
        }
    }

    fn every_song_in(
        sections: &[Section],
        check: &mut impl FnMut(Style, Key, Meter, &[Section], &ChordTrack, &[Note]),
    ) {
        for style in Style::ALL {
            for meter in Meter::ALL {
                for (i, mode) in MODES.into_iter().enumerate() {
                    let key = Key::new(i as u8 * 5, mode);
                    for seed in [1, 2] {
                        let (chords, melody) = song(style, key, meter, sections, seed);
                        check(style, key, meter, sections, &chords, &melody);
                    }
                }
            }
        }
    }

    #[test]
    fn notes_fit_the_grid_the_lead_range_and_midi_velocity() {
        every_song(|style, _, meter, sections, _, melody| {
            let steps = sections.last().unwrap().end_bar() * meter.steps_per_bar();
            assert!(!melody.is_empty(), "{style} {meter}: a melody");
            for n in melody {
                assert!(
                    n.duration >= 1 && n.end() <= steps,
                    "{style} {meter}: {n:?} on the grid"
                );
                assert!(
                    (-12..=35).contains(&n.pitch),
                    "{style}: {n:?} in the lead range"
                );
                assert!((1..=127).contains(&n.velocity));
            }
            let mean = melody.iter().map(|n| n.pitch).sum::<i32>() as f32 / melody.len() as f32;
            assert!(
                (-2.0..=22.0).contains(&mean),
                "{style} {meter}: singable register ({mean})"
            );
        });
    }

    #[test]
    fn every_note_is_in_the_key_and_the_line_is_one_voice() {
        every_song(|style, key, meter, _, _, melody| {
            assert!(
                melody.iter().all(|n| key.contains_relative(n.pitch)),
                "{style} {meter}: in {key}"
            );
            for pair in melody.windows(2) {
                assert!(
                    pair[0].end() <= pair[1].start,
                    "{style} {meter}: overlap {pair:?}"
                );
            }
        });
    }

    #[test]
    fn downbeats_sing_chord_tones() {
        every_song(|style, key, meter, _, chords, melody| {
            let downbeats: Vec<&Note> = melody
                .iter()
                .filter(|n| n.start.is_multiple_of(meter.steps_per_bar()))
                .collect();
            let fitting = downbeats
                .iter()
                .filter(|n| {
                    chords
                        .at_step(meter, n.start)
                        .is_some_and(|c| c.contains_relative(n.pitch))
                })
                .count();
            assert!(
                fitting * 10 >= downbeats.len() * 6,
                "{style} {meter} {key}: {fitting}/{} downbeat chord tones",
                downbeats.len()
            );
        });
    }

    #[test]
    fn the_song_ends_on_the_tonic_over_the_tonic_chord() {
        every_song(|style, _, meter, _, chords, melody| {
            let last = melody.last().unwrap();
            assert_eq!(
                last.pitch.rem_euclid(12),
                0,
                "{style} {meter}: ends on the tonic"
            );
            assert_eq!(chords.per_beat.last().unwrap().root, 0);
        });
    }

    #[test]
    fn a_recurring_chorus_sings_the_same_hook() {
        every_song(|style, _, meter, sections, _, melody| {
            let bar = meter.steps_per_bar();
            let line = |s: &Section| -> Vec<(u32, i32)> {
                melody
                    .iter()
                    .filter(|n| n.start >= s.start_bar * bar && n.start < s.end_bar() * bar)
                    .map(|n| (n.start - s.start_bar * bar, n.pitch))
                    .collect()
            };
            let (first, second) = (line(&sections[2]), line(&sections[4]));
            assert!(!first.is_empty());
            let shared = first.iter().filter(|n| second.contains(n)).count();
            assert!(
                shared * 10 >= first.len() * 9,
                "{style} {meter}: hook {shared}/{}",
                first.len()
            );
        });
    }

    #[test]
    fn the_chorus_sits_higher_than_the_verse() {
        let mut higher = 0;
        let mut total = 0;
        every_song(|_, _, meter, sections, _, melody| {
            let bar = meter.steps_per_bar();
            let mean = |s: &Section| {
                let notes: Vec<i32> = melody
                    .iter()
                    .filter(|n| n.start >= s.start_bar * bar && n.start < s.end_bar() * bar)
                    .map(|n| n.pitch)
                    .collect();
                notes.iter().sum::<i32>() as f32 / notes.len().max(1) as f32
            };
            total += 1;
            if mean(&sections[2]) > mean(&sections[1]) {
                higher += 1;
            }
        });
        assert!(
            higher * 10 >= total * 7,
            "chorus higher in {higher}/{total} songs"
        );
    }

    #[test]
    fn leaps_mostly_turn_back_by_step() {
        let mut tally = std::collections::BTreeMap::new();
        every_song(|style, _, _, _, _, melody| {
            let (leaps, resolved) = tally.entry(style).or_insert((0, 0));
            for w in melody.windows(3) {
                let leap = w[1].pitch - w[0].pitch;
                // Leaps within a phrase (not across a breath) should turn back by step.
                if leap.abs() >= 5 && w[1].start == w[0].end() && w[2].start == w[1].end() {
                    *leaps += 1;
                    let next = w[2].pitch - w[1].pitch;
                    if next.signum() == -leap.signum() && next.abs() <= 4 {
                        *resolved += 1;
                    }
                }
            }
        });
        for (style, (leaps, resolved)) in tally {
            println!("{style}: {resolved}/{leaps}");
            // Chiptune arpeggios climb through the chord on purpose, and ambient's long notes
            // move between chord tones like a pad, so they are held to a lower share.
            let share = match style {
                Style::Chiptune => 0,
                Style::Ambient => 4,
                _ => 7,
            };
            assert!(
                resolved * 10 >= leaps * share,
                "{style}: {resolved}/{leaps} leaps resolved"
            );
        }
    }

    #[test]
    fn same_seed_same_tune_other_seeds_other_tunes() {
        let sections = pop_form();
        for style in Style::ALL {
            for meter in Meter::ALL {
                let key = Key::new(7, Mode::Major);
                let a = song(style, key, meter, &sections, 9).1;
                assert_eq!(a, song(style, key, meter, &sections, 9).1);
                let b = song(style, key, meter, &sections, 10).1;
                assert_ne!(a, b, "{style} {meter}: seeds should give different tunes");
            }
        }
    }

    #[test]
    fn styles_keep_their_density() {
        let sections = pop_form();
        let density = |style: Style| {
            (0..4)
                .map(|seed| {
                    song(
                        style,
                        Key::new(0, Mode::Major),
                        Meter::FourFour,
                        &sections,
                        seed,
                    )
                    .1
                    .len()
                })
                .sum::<usize>()
        };
        assert!(density(Style::Chiptune) > density(Style::Ambient) * 3);
        assert!(density(Style::Folk) > density(Style::Cinematic));
    }

    #[test]
    #[ignore = "prints lead sheets for listening notes and docs"]
    fn print_lead_sheets() {
        use crate::compose::progression::roman_numeral;
        let sections = form(&[(SectionKind::Verse, 8, 0.5), (SectionKind::Chorus, 8, 0.8)]);
        for style in Style::ALL {
            for meter in Meter::ALL {
                let key = Key::new(0, Mode::Major);
                let (chords, melody) = song(style, key, meter, &sections, 3);
                println!("== {style} {meter}");
                let bar = meter.steps_per_bar();
                for b in 0..16 {
                    let names: Vec<String> = chords
                        .bar(meter, b)
                        .iter()
                        .map(|c| roman_numeral(*c, key.mode))
                        .collect();
                    let notes: Vec<String> = melody
                        .iter()
                        .filter(|n| n.start / bar == b)
                        .map(|n| format!("{}@{}x{}", n.pitch, n.start % bar, n.duration))
                        .collect();
                    println!("{b:2} {:28} {}", names.join(" "), notes.join(" "));
                }
            }
        }
    }

    #[test]
    fn empty_tiny_and_unsung_forms_work() {
        let key = Key::new(0, Mode::Minor);
        for style in Style::ALL {
            for meter in Meter::ALL {
                assert!(song(style, key, meter, &[], 1).1.is_empty());
                let tiny = form(&[
                    (SectionKind::Verse, 1, 0.5),
                    (SectionKind::Chorus, 1, 0.8),
                    (SectionKind::Bridge, 0, 0.5),
                    (SectionKind::Chorus, 1, 0.8),
                ]);
                let (_, melody) = song(style, key, meter, &tiny, 3);
                assert!(!melody.is_empty());
                assert!(melody.iter().all(|n| n.end() <= 3 * meter.steps_per_bar()));
                let unsung = form(&[(SectionKind::Intro, 2, 0.3), (SectionKind::Outro, 3, 0.3)]);
                let (_, melody) = song(style, key, meter, &unsung, 3);
                assert!(
                    !melody.is_empty(),
                    "{style} {meter}: a tune even without verses"
                );
                assert_eq!(melody.last().unwrap().pitch.rem_euclid(12), 0);
            }
        }
    }
}
