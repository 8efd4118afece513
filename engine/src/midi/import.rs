//! Standard MIDI File -> Song: timing checks, note pairing, quantisation to the sixteenth grid,
//! key estimation and the sorting of parts into stems.

use super::{KEY_TEXT_PREFIX, MAX_IMPORT_BARS, MAX_IMPORT_NOTES, key_from_signature};
use crate::Error;
use crate::model::rhythm;
use crate::music::{
    ChordTrack, DrumClass, Instrument, Key, Meter, Mode, Note, STEPS_PER_QUARTER, Section,
    SectionKind, Song, Stem, StemTrack, Style,
};
use midly::{Format, MetaMessage, MidiMessage, Smf, Timing, TrackEventKind};
use std::collections::{HashMap, VecDeque};

const DRUM_CHANNEL: u8 = 9;
const DEFAULT_BPM: f64 = 120.0;

/// A note as the file has it: absolute key and ticks, before the grid and the key.
#[derive(Clone, Copy, Debug)]
struct RawNote {
    key: u8,
    start_tick: u64,
    end_tick: u64,
    velocity: u8,
}

/// The notes of one (track, channel) pair, which import treats as one instrumental part.
#[derive(Debug, Default)]
struct Part {
    channel: u8,
    program: Option<u8>,
    /// Stem named by the track name, as refrain writes it (type-1 files only).
    stem_hint: Option<Stem>,
    /// Instrument named by an instrument-name event that matches a refrain instrument.
    instrument_hint: Option<Instrument>,
    notes: Vec<RawNote>,
}

/// The first value of a conductor-type event in the file: earliest tick, then lowest track.
#[derive(Clone, Copy, Debug)]
struct First<T> {
    at: Option<(u64, usize, T)>,
}

impl<T: Copy> First<T> {
    fn new() -> Self {
        First { at: None }
    }
    fn offer(&mut self, tick: u64, track: usize, value: T) {
        if self.at.is_none_or(|(t, k, _)| (tick, track) < (t, k)) {
            self.at = Some((tick, track, value));
        }
    }
    fn value(&self) -> Option<T> {
        self.at.map(|(_, _, v)| v)
    }
}

pub(super) fn read_midi(bytes: &[u8]) -> Result<Song, Error> {
    let smf = Smf::parse(bytes).map_err(|e| {
        Error::Midi(format!(
            "the file is not a readable Standard MIDI File ({e})"
        ))
    })?;
    if smf.header.format == Format::Sequential {
        return Err(Error::Midi(
            "type-2 (sequential) MIDI files are not supported; save the file as type 0 or 1".into(),
        ));
    }
    let ticks_per_quarter = match smf.header.timing {
        Timing::Metrical(t) if t.as_int() > 0 => u64::from(t.as_int()),
        Timing::Metrical(_) => {
            return Err(Error::Midi(
                "the file declares zero ticks per quarter note".into(),
            ));
        }
        Timing::Timecode(..) => {
            return Err(Error::Midi(
                "the file uses SMPTE timecode timing; only metrical (ticks per quarter note) \
                 timing can be placed on a musical grid"
                    .into(),
            ));
        }
    };
    let note_ons: usize = smf
        .tracks
        .iter()
        .flatten()
        .filter(|e| {
            matches!(e.kind, TrackEventKind::Midi { message: MidiMessage::NoteOn { vel, .. }, .. }
                if vel.as_int() > 0)
        })
        .count();
    if note_ons > MAX_IMPORT_NOTES {
        return Err(Error::Midi(format!(
            "the file holds {note_ons} notes; at most {MAX_IMPORT_NOTES} can be imported"
        )));
    }

    let mut tempo = First::new();
    let mut time_signature = First::new();
    let mut key_signature = First::new();
    let mut key_text: First<Key> = First::new();
    let mut parts: Vec<Part> = Vec::new();
    let single_track = smf.header.format == Format::SingleTrack;

    for (track_index, track) in smf.tracks.iter().enumerate() {
        let mut tick = 0u64;
        let mut track_name: Option<&[u8]> = None;
        let mut instrument_name: Option<&[u8]> = None;
        // Part index per channel within this track.
        let mut part_of_channel: [Option<usize>; 16] = [None; 16];
        // Notes still sounding, per (channel, key): start tick and velocity, oldest first.
        let mut open: HashMap<(u8, u8), VecDeque<(u64, u8)>> = HashMap::new();
        let first_part = parts.len();
        for event in track {
            tick = tick.saturating_add(u64::from(event.delta.as_int()));
            match event.kind {
                TrackEventKind::Meta(MetaMessage::Tempo(t)) => {
                    tempo.offer(tick, track_index, t.as_int());
                }
                TrackEventKind::Meta(MetaMessage::TimeSignature(n, d, _, _)) => {
                    time_signature.offer(tick, track_index, (n, d));
                }
                TrackEventKind::Meta(MetaMessage::KeySignature(sf, minor)) => {
                    key_signature.offer(tick, track_index, (sf, minor));
                }
                TrackEventKind::Meta(MetaMessage::Text(text)) => {
                    if let Some(key) = std::str::from_utf8(text)
                        .ok()
                        .and_then(|t| t.strip_prefix(KEY_TEXT_PREFIX))
                        .and_then(Key::parse)
                    {
                        key_text.offer(tick, track_index, key);
                    }
                }
                TrackEventKind::Meta(MetaMessage::TrackName(name)) => {
                    track_name.get_or_insert(name);
                }
                TrackEventKind::Meta(MetaMessage::InstrumentName(name)) => {
                    instrument_name.get_or_insert(name);
                }
                TrackEventKind::Midi { channel, message } => {
                    let channel = channel.as_int();
                    let part = *part_of_channel[usize::from(channel)].get_or_insert_with(|| {
                        parts.push(Part {
                            channel,
                            ..Part::default()
                        });
                        parts.len() - 1
                    });
                    match message {
                        MidiMessage::ProgramChange { program } => {
                            parts[part].program.get_or_insert(program.as_int());
                        }
                        MidiMessage::NoteOn { key, vel } if vel.as_int() > 0 => {
                            open.entry((channel, key.as_int()))
                                .or_default()
                                .push_back((tick, vel.as_int()));
                        }
                        MidiMessage::NoteOn { key, .. } | MidiMessage::NoteOff { key, .. } => {
                            if let Some((start_tick, velocity)) = open
                                .get_mut(&(channel, key.as_int()))
                                .and_then(VecDeque::pop_front)
                            {
                                parts[part].notes.push(RawNote {
                                    key: key.as_int(),
                                    start_tick,
                                    end_tick: tick,
                                    velocity,
                                });
                            }
                        }
                        _ => {}
                    }
                }
                _ => {}
            }
        }
        // Notes never released end with their track.
        let mut unterminated: Vec<_> = open.into_iter().collect();
        unterminated.sort_unstable_by_key(|&(k, _)| k);
        for ((channel, key), stack) in unterminated {
            if let Some(part) = part_of_channel[usize::from(channel)] {
                for (start_tick, velocity) in stack {
                    parts[part].notes.push(RawNote {
                        key,
                        start_tick,
                        end_tick: tick,
                        velocity,
                    });
                }
            }
        }
        // Names describe the whole track, so they can only name a stem when the track holds
        // a single part (as in the type-1 files refrain writes).
        if !single_track && parts.len() == first_part + 1 {
            let part = &mut parts[first_part];
            part.stem_hint = track_name
                .and_then(|n| std::str::from_utf8(n).ok())
                .and_then(Stem::parse);
            part.instrument_hint = instrument_name
                .and_then(|n| std::str::from_utf8(n).ok())
                .and_then(instrument_from_name);
        }
    }

    let tempo_bpm = match tempo.value() {
        // Rounded to hundredths so that a tempo survives the whole-microsecond MIDI encoding.
        Some(micros) if micros > 0 => ((60e6 / f64::from(micros)) * 100.0).round() / 100.0,
        _ => DEFAULT_BPM,
    };
    let meter = time_signature
        .value()
        .and_then(|(n, d)| (d < 8).then(|| Meter::from_signature(u32::from(n), 1u32 << d))?)
        .unwrap_or(Meter::FourFour);
    let steps_per_bar = meter.steps_per_bar();
    let max_steps = u64::from(MAX_IMPORT_BARS) * u64::from(steps_per_bar);
    let to_step = |tick: u64| -> u64 {
        let scaled = u128::from(tick) * u128::from(STEPS_PER_QUARTER);
        let step = (scaled + u128::from(ticks_per_quarter / 2)) / u128::from(ticks_per_quarter);
        u64::try_from(step).unwrap_or(u64::MAX)
    };

    // Quantise every note, still with absolute keys; drums separately.
    let mut drum_notes: Vec<Note> = Vec::new();
    let mut pitched: Vec<(usize, Vec<Note>)> = Vec::new();
    let mut last_end = 0u64;
    for (index, part) in parts.iter().enumerate() {
        let mut notes = Vec::with_capacity(part.notes.len());
        for raw in &part.notes {
            let start = to_step(raw.start_tick);
            let end = to_step(raw.end_tick.max(raw.start_tick)).max(start + 1);
            if end > max_steps {
                return Err(Error::Midi(format!(
                    "the file is longer than {MAX_IMPORT_BARS} bars of {meter}; refrain imports \
                     at most that much"
                )));
            }
            let pitch = if part.channel == DRUM_CHANNEL {
                match DrumClass::from_gm_note(raw.key) {
                    Some(class) => class.index(),
                    None => continue,
                }
            } else {
                i32::from(raw.key)
            };
            last_end = last_end.max(end);
            notes.push(Note {
                start: start as u32,
                duration: (end - start) as u32,
                pitch,
                velocity: raw.velocity.clamp(1, 127),
            });
        }
        if part.channel == DRUM_CHANNEL {
            drum_notes.extend(notes);
        } else {
            pitched.push((index, notes));
        }
    }

    let key = key_text
        .value()
        .or_else(|| {
            key_signature
                .value()
                .and_then(|(sf, minor)| key_from_signature(sf, minor))
        })
        .unwrap_or_else(|| estimate_key(pitched.iter().flat_map(|(_, n)| n.iter())));

    // Sort parts into stems.
    let drum_part = parts.iter().find(|p| p.channel == DRUM_CHANNEL);
    let mut stems: Vec<StemTrack> = Vec::new();
    if drum_part.is_some() {
        let instrument = drum_part
            .and_then(|p| p.instrument_hint)
            .unwrap_or(Instrument::DrumKit);
        let mut track = StemTrack::new(Stem::Drums, instrument);
        track.notes = drum_notes;
        stems.push(track);
    }
    let assignment = assign_stems(&parts, &pitched);
    for stem in [Stem::Bass, Stem::Chords, Stem::Lead, Stem::Texture] {
        let members: Vec<usize> = (0..pitched.len())
            .filter(|&i| assignment[i] == Some(stem))
            .collect();
        if members.is_empty() {
            continue;
        }
        // The instrument of the stem's busiest part stands for the stem.
        let main = members
            .iter()
            .copied()
            .max_by_key(|&i| (pitched[i].1.len(), std::cmp::Reverse(i)))
            .map_or(0, |i| pitched[i].0);
        let main_part = &parts[main];
        let instrument = main_part
            .instrument_hint
            .filter(|_| main_part.stem_hint == Some(stem))
            .unwrap_or_else(|| Instrument::from_gm_program(main_part.program.unwrap_or(0), stem));
        let mut track = StemTrack::new(stem, instrument);
        for &i in &members {
            track.notes.extend(pitched[i].1.iter().map(|n| Note {
                pitch: stem.fold_into_range(key.to_relative(n.pitch)),
                ..*n
            }));
        }
        stems.push(track);
    }
    for track in &mut stems {
        resolve_overlaps(&mut track.notes);
    }

    let bars = last_end.div_ceil(u64::from(steps_per_bar)).max(1) as u32;
    Ok(Song {
        style: Style::Lofi,
        tempo_bpm,
        meter,
        key,
        bars,
        sections: vec![Section {
            kind: SectionKind::Verse,
            start_bar: 0,
            bars,
            energy: 0.6,
        }],
        chords: ChordTrack::default(),
        stems,
    })
}

/// Matches "electric piano" (as refrain writes it) to [`Instrument::ElectricPiano`], through the
/// serde names so that every instrument is covered without a second list to keep in step.
fn instrument_from_name(name: &str) -> Option<Instrument> {
    let snake = name.trim().to_ascii_lowercase().replace([' ', '-'], "_");
    serde_json::from_value(serde_json::Value::String(snake)).ok()
}

/// Register and texture of a part, which decide its stem.
struct PartShape {
    notes: usize,
    mean_pitch: f64,
    /// Average number of notes sounding while any sounds: 1.0 for a monophonic line.
    polyphony: f64,
}

fn part_shape(notes: &[Note]) -> PartShape {
    if notes.is_empty() {
        return PartShape {
            notes: 0,
            mean_pitch: 60.0,
            polyphony: 1.0,
        };
    }
    let mean_pitch = notes.iter().map(|n| f64::from(n.pitch)).sum::<f64>() / notes.len() as f64;
    PartShape {
        notes: notes.len(),
        mean_pitch,
        polyphony: rhythm::polyphony_before(notes, u32::MAX).unwrap_or(0.0),
    }
}

/// Chooses a stem for every pitched part: the track's own name when it is a stem's name; then
/// bass programs or a low register -> bass; the busiest high, nearly monophonic part -> lead;
/// polyphonic mid-register parts -> chords; everything else -> texture.
fn assign_stems(parts: &[Part], pitched: &[(usize, Vec<Note>)]) -> Vec<Option<Stem>> {
    let shapes: Vec<PartShape> = pitched.iter().map(|(_, n)| part_shape(n)).collect();
    let mut assignment: Vec<Option<Stem>> = pitched
        .iter()
        .map(|(i, _)| parts[*i].stem_hint.filter(|s| s.is_pitched()))
        .collect();
    for (i, (part_index, _)) in pitched.iter().enumerate() {
        if assignment[i].is_some() || shapes[i].notes == 0 {
            continue;
        }
        let bass_program = parts[*part_index]
            .program
            .is_some_and(|p| (32..=39).contains(&p));
        if bass_program || shapes[i].mean_pitch < 48.0 {
            assignment[i] = Some(Stem::Bass);
        }
    }
    if !assignment.contains(&Some(Stem::Lead)) {
        let lead = (0..pitched.len())
            .filter(|&i| {
                assignment[i].is_none()
                    && shapes[i].notes > 0
                    && shapes[i].polyphony <= 1.3
                    && shapes[i].mean_pitch >= 55.0
            })
            .max_by(|&a, &b| {
                let score = |i: usize| {
                    shapes[i].notes as f64 * (1.0 + (shapes[i].mean_pitch - 55.0) / 24.0)
                };
                score(a).total_cmp(&score(b)).then(b.cmp(&a))
            });
        if let Some(i) = lead {
            assignment[i] = Some(Stem::Lead);
        }
    }
    for i in 0..pitched.len() {
        if assignment[i].is_none() && shapes[i].notes > 0 {
            let chordal =
                shapes[i].polyphony >= 1.5 && (48.0..=76.0).contains(&shapes[i].mean_pitch);
            assignment[i] = Some(if chordal { Stem::Chords } else { Stem::Texture });
        }
    }
    // Empty parts named after a stem keep that stem (so an empty stem survives a round trip);
    // other empty parts are dropped.
    assignment
}

/// Makes a stem's notes valid for the planes: one note per (pitch, start), and a note that is
/// still sounding when the same pitch is struck again is cut short there.
fn resolve_overlaps(notes: &mut Vec<Note>) {
    // By pitch, then start; at equal starts the longest first, so it is the one kept.
    notes.sort_unstable_by(|a, b| {
        (
            a.pitch,
            a.start,
            std::cmp::Reverse(a.duration),
            std::cmp::Reverse(a.velocity),
        )
            .cmp(&(
                b.pitch,
                b.start,
                std::cmp::Reverse(b.duration),
                std::cmp::Reverse(b.velocity),
            ))
    });
    let mut kept: Vec<Note> = Vec::with_capacity(notes.len());
    for note in notes.drain(..) {
        if let Some(previous) = kept.last_mut()
            && previous.pitch == note.pitch
            && note.start < previous.end()
        {
            if note.start == previous.start {
                continue;
            }
            previous.duration = note.start - previous.start;
        }
        kept.push(note);
    }
    kept.sort_unstable_by_key(|n| (n.start, n.pitch));
    *notes = kept;
}

/// Krumhansl-Schmuckler key finding: correlates the duration-weighted pitch-class histogram
/// with the Krumhansl-Kessler major and minor profiles in all twelve rotations.
fn estimate_key<'a>(notes: impl Iterator<Item = &'a Note>) -> Key {
    const MAJOR: [f64; 12] = [
        6.35, 2.23, 3.48, 2.33, 4.38, 4.09, 2.52, 5.19, 2.39, 3.66, 2.29, 2.88,
    ];
    const MINOR: [f64; 12] = [
        6.33, 2.68, 3.52, 5.38, 2.60, 3.53, 2.54, 4.75, 3.98, 2.69, 3.34, 3.17,
    ];
    let mut histogram = [0.0f64; 12];
    for note in notes {
        histogram[note.pitch.rem_euclid(12) as usize] += f64::from(note.duration);
    }
    if histogram.iter().all(|&h| h == 0.0) {
        return Key::new(0, Mode::Major);
    }
    let mut best = (f64::NEG_INFINITY, Key::new(0, Mode::Major));
    for (mode, profile) in [(Mode::Major, &MAJOR), (Mode::Minor, &MINOR)] {
        for tonic in 0..12u8 {
            let rotated: [f64; 12] =
                std::array::from_fn(|pc| profile[(pc + 12 - usize::from(tonic)) % 12]);
            let r = correlation(&histogram, &rotated);
            if r > best.0 {
                best = (r, Key::new(tonic, mode));
            }
        }
    }
    best.1
}

fn correlation(a: &[f64; 12], b: &[f64; 12]) -> f64 {
    let mean_a = a.iter().sum::<f64>() / 12.0;
    let mean_b = b.iter().sum::<f64>() / 12.0;
    let (mut ab, mut aa, mut bb) = (0.0, 0.0, 0.0);
    for (x, y) in a.iter().zip(b) {
        ab += (x - mean_a) * (y - mean_b);
        aa += (x - mean_a).powi(2);
        bb += (y - mean_b).powi(2);
    }
    if aa == 0.0 || bb == 0.0 {
        0.0
    } else {
        ab / (aa * bb).sqrt()
    }
}
