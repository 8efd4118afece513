//! Round trips, files made with midly directly, and hostile bytes.

use super::*;
use crate::music::{
    ChordTrack, DrumClass, Instrument, Meter, Note, Section, SectionKind, Stem, StemTrack, Style,
};
use crate::planes::notes_to_planes;
use midly::num::{u4, u7, u15, u24, u28};
use midly::{Format, Header, MetaMessage, MidiMessage, Smf, Timing, TrackEvent, TrackEventKind};
use proptest::prelude::*;

fn note(start: u32, duration: u32, pitch: i32, velocity: u8) -> Note {
    Note {
        start,
        duration,
        pitch,
        velocity,
    }
}

/// A four-bar song with all five stems, notes crossing bar lines, repeated pitches and chords.
fn test_song(meter: Meter, key: Key, tempo_bpm: f64) -> Song {
    let spb = meter.steps_per_bar();
    let bars = 4;
    let mut drums = StemTrack::new(Stem::Drums, Instrument::DrumKit);
    let mut bass = StemTrack::new(Stem::Bass, Instrument::FingerBass);
    let mut chords = StemTrack::new(Stem::Chords, Instrument::ElectricPiano);
    let mut lead = StemTrack::new(Stem::Lead, Instrument::SawLead);
    let mut texture = StemTrack::new(Stem::Texture, Instrument::ChipTriangleBass);
    for bar in 0..bars {
        let b = bar * spb;
        for step in (0..spb).step_by(2) {
            drums.notes.push(note(
                b + step,
                1,
                DrumClass::ClosedHat.index(),
                70 + step as u8,
            ));
        }
        drums.notes.push(note(b, 1, DrumClass::Kick.index(), 110));
        drums
            .notes
            .push(note(b + spb / 2, 1, DrumClass::Snare.index(), 100));
        bass.notes.push(note(b, 4, -24, 100));
        bass.notes.push(note(b + 4, 4, -24, 90)); // repeated pitch, touching
        bass.notes.push(note(b + 8, 2, -17 + bar as i32, 80));
        for (i, p) in [0, 4, 7, 11].into_iter().enumerate() {
            chords
                .notes
                .push(note(b, spb, p - 2 * bar as i32, 60 + i as u8));
        }
        lead.notes.push(note(b + 1, 3, 12 + bar as i32, 90));
        lead.notes.push(note(b + 5, 6, 14, 95));
        texture.notes.push(note(b + 3, 1, 24, 40));
    }
    // A note crossing a bar line and one ending exactly at the end of the song.
    lead.notes.push(note(spb - 2, 5, 30, 127));
    lead.notes.push(note(bars * spb - 2, 2, -12, 1));
    let mut stems = vec![drums, bass, chords, lead, texture];
    for s in &mut stems {
        s.notes.sort_unstable_by_key(|n| (n.start, n.pitch));
        s.notes
            .dedup_by(|a, b| a.start == b.start && a.pitch == b.pitch);
    }
    Song {
        style: Style::Jazz,
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
    }
}

fn sorted(notes: &[Note]) -> Vec<Note> {
    let mut n = notes.to_vec();
    n.sort_unstable_by_key(|n| (n.start, n.pitch, n.duration, n.velocity));
    n
}

fn assert_valid(song: &Song) {
    for track in &song.stems {
        notes_to_planes(track.stem, song.meter, song.bars, &track.notes)
            .unwrap_or_else(|e| panic!("{} invalid after import: {e}", track.stem));
    }
}

#[test]
fn round_trip_reproduces_notes_tempo_meter_and_key() {
    let keys = [
        Key::new(0, Mode::Major),
        Key::new(9, Mode::Minor),
        Key::new(6, Mode::Major),
        Key::new(10, Mode::Minor),
        Key::new(2, Mode::Dorian),
        Key::new(7, Mode::Mixolydian),
        Key::new(1, Mode::Major),
    ];
    for (i, meter) in Meter::ALL.into_iter().enumerate() {
        for (j, key) in keys.into_iter().enumerate() {
            let tempo = [72.0, 90.0, 123.45, 174.0][(i + j) % 4];
            let song = test_song(meter, key, tempo);
            let bytes = write_midi(&song);
            let back = read_midi(&bytes).unwrap();
            assert_eq!(back.meter, meter);
            assert_eq!(back.key, key);
            assert!(
                (back.tempo_bpm - tempo).abs() < 1e-9,
                "{} vs {tempo}",
                back.tempo_bpm
            );
            assert_eq!(back.bars, song.bars);
            assert_eq!(back.stems.len(), 5);
            for original in &song.stems {
                let read = back.stem(original.stem).expect("stem survives");
                assert_eq!(read.instrument, original.instrument);
                assert_eq!(
                    sorted(&read.notes),
                    sorted(&original.notes),
                    "{}",
                    original.stem
                );
            }
            assert_valid(&back);
        }
    }
}

#[test]
fn export_writes_type_1_with_conductor_drum_channel_and_programs() {
    let song = test_song(Meter::SixEight, Key::new(2, Mode::Minor), 100.0);
    let bytes = write_midi(&song);
    let smf = Smf::parse(&bytes).unwrap();
    assert_eq!(smf.header.format, Format::Parallel);
    assert_eq!(smf.header.timing, Timing::Metrical(u15::new(480)));
    assert_eq!(smf.tracks.len(), 6);
    let metas: Vec<_> = smf.tracks[0].iter().map(|e| e.kind).collect();
    assert!(metas.contains(&TrackEventKind::Meta(MetaMessage::Tempo(u24::new(600_000)))));
    assert!(
        metas.contains(&TrackEventKind::Meta(MetaMessage::TimeSignature(
            6, 3, 36, 8
        )))
    );
    // D minor: one flat, minor.
    assert!(metas.contains(&TrackEventKind::Meta(MetaMessage::KeySignature(-1, true))));
    for (track, stem) in smf.tracks[1..].iter().zip(Stem::ALL) {
        assert!(track.iter().any(
            |e| e.kind == TrackEventKind::Meta(MetaMessage::TrackName(stem.name().as_bytes()))
        ));
        let channels: Vec<u8> = track
            .iter()
            .filter_map(|e| match e.kind {
                TrackEventKind::Midi { channel, .. } => Some(channel.as_int()),
                _ => None,
            })
            .collect();
        assert!(!channels.is_empty());
        assert!(channels.iter().all(|&c| (c == 9) == (stem == Stem::Drums)));
        assert_eq!(
            track.last().map(|e| e.kind),
            Some(TrackEventKind::Meta(MetaMessage::EndOfTrack))
        );
        // Note-offs come before note-ons at the same tick.
        let mut tick = 0u32;
        let mut last: Option<(u32, bool)> = None;
        for e in track.iter() {
            tick += e.delta.as_int();
            if let TrackEventKind::Midi { message, .. } = e.kind {
                let on = match message {
                    MidiMessage::NoteOn { .. } => true,
                    MidiMessage::NoteOff { .. } => false,
                    _ => continue,
                };
                if let Some((t, was_on)) = last {
                    assert!(
                        !(t == tick && was_on && !on),
                        "note-off after note-on at {tick}"
                    );
                }
                last = Some((tick, on));
            }
        }
    }
}

#[test]
fn key_signatures_follow_the_circle_of_fifths() {
    assert_eq!(key_signature_accidentals(Key::new(0, Mode::Major)), 0);
    assert_eq!(key_signature_accidentals(Key::new(7, Mode::Major)), 1);
    assert_eq!(key_signature_accidentals(Key::new(6, Mode::Major)), 6);
    assert_eq!(key_signature_accidentals(Key::new(10, Mode::Major)), -2);
    assert_eq!(key_signature_accidentals(Key::new(4, Mode::Minor)), 1);
    assert_eq!(key_signature_accidentals(Key::new(2, Mode::Dorian)), 0);
    for tonic in 0..12 {
        for mode in [Mode::Major, Mode::Minor] {
            let key = Key::new(tonic, mode);
            let sf = key_signature_accidentals(key);
            assert_eq!(key_from_signature(sf, mode == Mode::Minor), Some(key));
        }
    }
}

/// A type-0 file: everything on one track, tempo and meter included, notes on four channels.
fn type_0_file(with_key_signature: bool) -> Vec<u8> {
    let mut events: Vec<(u32, TrackEventKind<'static>)> = vec![
        (
            0,
            TrackEventKind::Meta(MetaMessage::Tempo(u24::new(500_000))),
        ),
        (
            0,
            TrackEventKind::Meta(MetaMessage::TimeSignature(3, 2, 24, 8)),
        ),
    ];
    if with_key_signature {
        events.push((0, TrackEventKind::Meta(MetaMessage::KeySignature(2, false))));
    }
    let midi = |channel: u8, message| TrackEventKind::Midi {
        channel: u4::new(channel),
        message,
    };
    let on = |key: u8, vel: u8| MidiMessage::NoteOn {
        key: u7::new(key),
        vel: u7::new(vel),
    };
    let off = |key: u8| MidiMessage::NoteOn {
        key: u7::new(key),
        vel: u7::new(0),
    };
    events.push((
        0,
        midi(
            0,
            MidiMessage::ProgramChange {
                program: u7::new(33),
            },
        ),
    ));
    events.push((
        0,
        midi(
            1,
            MidiMessage::ProgramChange {
                program: u7::new(0),
            },
        ),
    ));
    events.push((
        0,
        midi(
            2,
            MidiMessage::ProgramChange {
                program: u7::new(73),
            },
        ),
    ));
    // 96 ticks per quarter: a step is 24 ticks. Three bars of 3/4 in D major.
    let d_major_line = [74u8, 76, 78, 79, 81, 83, 85, 86, 85, 83, 81, 79];
    for bar in 0..3u32 {
        let t = bar * 288;
        events.push((t, midi(0, on(38, 100))));
        events.push((t + 280, midi(0, off(38))));
        for k in [62u8, 66, 69] {
            events.push((t, midi(1, on(k, 70))));
            events.push((t + 287, midi(1, off(k))));
        }
        for (i, &k) in d_major_line.iter().enumerate().take(4) {
            let s = t + i as u32 * 72 + 3; // slightly late: quantised back to the grid
            events.push((s, midi(2, on(k, 90))));
            events.push((s + 70, midi(2, off(k))));
        }
        events.push((t, midi(9, on(36, 120))));
        events.push((t + 10, midi(9, off(36))));
        events.push((t + 144, midi(9, on(34, 120)))); // no GM class: dropped
        events.push((t + 150, midi(9, off(34))));
    }
    events.sort_by_key(|&(t, ref k)| (t, !matches!(k, TrackEventKind::Meta(_))));
    let mut track = Vec::new();
    let mut now = 0;
    for (t, kind) in events {
        track.push(TrackEvent {
            delta: u28::new(t - now),
            kind,
        });
        now = t;
    }
    track.push(TrackEvent {
        delta: u28::new(0),
        kind: TrackEventKind::Meta(MetaMessage::EndOfTrack),
    });
    let smf = Smf {
        header: Header::new(Format::SingleTrack, Timing::Metrical(u15::new(96))),
        tracks: vec![track],
    };
    let mut bytes = Vec::new();
    smf.write_std(&mut bytes).unwrap();
    bytes
}

#[test]
fn type_0_files_are_split_into_stems() {
    for with_key_signature in [true, false] {
        let song = read_midi(&type_0_file(with_key_signature)).unwrap();
        assert_eq!(song.meter, Meter::ThreeFour);
        assert!((song.tempo_bpm - 120.0).abs() < 1e-9);
        // Estimated or declared, the key is D major.
        assert_eq!(song.key, Key::new(2, Mode::Major));
        assert_eq!(song.bars, 3);
        assert_valid(&song);
        let drums = song.stem(Stem::Drums).unwrap();
        assert_eq!(drums.notes.len(), 3);
        assert!(
            drums
                .notes
                .iter()
                .all(|n| n.pitch == DrumClass::Kick.index())
        );
        let bass = song.stem(Stem::Bass).unwrap();
        assert_eq!(bass.instrument, Instrument::FingerBass);
        assert_eq!(bass.notes.len(), 3);
        assert_eq!(bass.notes[0].duration, 12);
        let chords = song.stem(Stem::Chords).unwrap();
        assert_eq!(chords.notes.len(), 9);
        assert_eq!(chords.instrument, Instrument::Piano);
        let lead = song.stem(Stem::Lead).unwrap();
        assert_eq!(lead.instrument, Instrument::Flute);
        assert_eq!(lead.notes.len(), 12);
        assert_eq!(lead.notes[1].start, 3);
        assert_eq!(lead.notes[1].duration, 3);
        // 76 = E5 in D major: relative +14 from the D4 reference.
        assert_eq!(lead.notes[1].pitch, 14);
    }
}

#[test]
fn overlapping_same_pitch_notes_are_trimmed() {
    let mut events = Vec::new();
    let on = |key: u8| TrackEventKind::Midi {
        channel: u4::new(0),
        message: MidiMessage::NoteOn {
            key: u7::new(key),
            vel: u7::new(80),
        },
    };
    let off = |key: u8| TrackEventKind::Midi {
        channel: u4::new(0),
        message: MidiMessage::NoteOff {
            key: u7::new(key),
            vel: u7::new(0),
        },
    };
    // Two overlapping C5s, an unterminated E5, and an octave-high note needing folding.
    for (delta, kind) in [
        (0, on(72)),
        (240, on(72)),
        (240, off(72)),
        (240, off(72)),
        (0, on(76)),
        (0, on(127)),
        (480, off(127)),
    ] {
        events.push(TrackEvent {
            delta: u28::new(delta),
            kind,
        });
    }
    let smf = Smf {
        header: Header::new(Format::Parallel, Timing::Metrical(u15::new(480))),
        tracks: vec![events],
    };
    let mut bytes = Vec::new();
    smf.write_std(&mut bytes).unwrap();
    let song = read_midi(&bytes).unwrap();
    assert_valid(&song);
    let total: usize = song.stems.iter().map(|s| s.notes.len()).sum();
    assert_eq!(total, 4);
}

#[test]
fn unsupported_files_give_errors_in_words() {
    let smpte = Smf {
        header: Header::new(Format::Parallel, Timing::Timecode(midly::Fps::Fps25, 40)),
        tracks: vec![vec![]],
    };
    let mut bytes = Vec::new();
    smpte.write_std(&mut bytes).unwrap();
    let e = read_midi(&bytes).unwrap_err().to_string();
    assert!(e.contains("SMPTE"), "{e}");

    let mut sequential = Smf::new(Header::new(
        Format::Sequential,
        Timing::Metrical(u15::new(96)),
    ));
    sequential.tracks.push(vec![]);
    let mut bytes = Vec::new();
    sequential.write_std(&mut bytes).unwrap();
    let e = read_midi(&bytes).unwrap_err().to_string();
    assert!(e.contains("type-2"), "{e}");

    assert!(read_midi(b"").is_err());
    assert!(read_midi(b"RIFF....").is_err());

    // A note far beyond the bar cap.
    let long = Smf {
        header: Header::new(Format::Parallel, Timing::Metrical(u15::new(1))),
        tracks: vec![vec![
            TrackEvent {
                delta: u28::new(0),
                kind: TrackEventKind::Midi {
                    channel: u4::new(0),
                    message: MidiMessage::NoteOn {
                        key: u7::new(60),
                        vel: u7::new(1),
                    },
                },
            },
            TrackEvent {
                delta: u28::max_value(),
                kind: TrackEventKind::Midi {
                    channel: u4::new(0),
                    message: MidiMessage::NoteOff {
                        key: u7::new(60),
                        vel: u7::new(1),
                    },
                },
            },
        ]],
    };
    let mut bytes = Vec::new();
    long.write_std(&mut bytes).unwrap();
    let e = read_midi(&bytes).unwrap_err().to_string();
    assert!(e.contains("4096 bars"), "{e}");
}

#[test]
fn empty_song_round_trips_to_one_bar() {
    let mut song = test_song(Meter::FourFour, Key::new(0, Mode::Major), 120.0);
    for s in &mut song.stems {
        s.notes.clear();
    }
    let back = read_midi(&write_midi(&song)).unwrap();
    assert_eq!(back.bars, 1);
    assert_eq!(back.stems.len(), 5);
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(256))]

    #[test]
    fn random_bytes_never_panic(bytes in proptest::collection::vec(any::<u8>(), 0..512)) {
        let _ = read_midi(&bytes);
        let mut with_header = b"MThd\x00\x00\x00\x06\x00\x01\x00\x02\x01\xe0MTrk".to_vec();
        with_header.extend_from_slice(&bytes);
        let _ = read_midi(&with_header);
    }

    #[test]
    fn mutated_valid_files_never_panic(
        edits in proptest::collection::vec((0usize..4096, any::<u8>(), 0u8..3), 1..12),
        meter in 0usize..3,
    ) {
        let song = test_song(Meter::ALL[meter], Key::new(4, Mode::Minor), 97.0);
        let mut bytes = write_midi(&song);
        for (position, byte, kind) in edits {
            let at = position % (bytes.len() + 1);
            match kind {
                0 if at < bytes.len() => bytes[at] ^= byte | 1,
                1 => bytes.insert(at, byte),
                _ if at < bytes.len() => { bytes.remove(at); }
                _ => {}
            }
        }
        if let Ok(read) = read_midi(&bytes) {
            prop_assert!(read.bars >= 1 && read.bars <= MAX_IMPORT_BARS);
            for track in &read.stems {
                prop_assert!(notes_to_planes(track.stem, read.meter, read.bars, &track.notes).is_ok());
            }
        }
    }
}
