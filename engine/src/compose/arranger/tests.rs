//! Tests of the arranger against hand-written lead sheets in every style and meter.

use super::arrange;
use crate::compose::{LeadSheet, SongRng};
use crate::music::{
    Chord, ChordQuality, ChordTrack, DrumClass, Key, Meter, Mode, Mood, Note, Section, SectionKind,
    Song, Stem, Style,
};
use crate::planes::notes_to_planes;
use rand::SeedableRng;

/// C major, intro 2 / verse 4 / chorus 4 / outro 2, I-V-vi-IV a bar each (two chords a bar
/// in the chorus), a quarter-note scale melody in verse and chorus, ending on I.
fn sheet(style: Style, meter: Meter) -> LeadSheet {
    let plan = [
        (SectionKind::Intro, 2, 0.3),
        (SectionKind::Verse, 4, 0.5),
        (SectionKind::Chorus, 4, 0.85),
        (SectionKind::Outro, 2, 0.4),
    ];
    let mut sections = Vec::new();
    let mut start_bar = 0;
    for (kind, bars, energy) in plan {
        sections.push(Section {
            kind,
            start_bar,
            bars,
            energy,
        });
        start_bar += bars;
    }
    let bars = start_bar;
    let progression = [
        Chord::new(0, ChordQuality::Major),
        Chord::new(7, ChordQuality::Major),
        Chord::new(9, ChordQuality::Minor),
        Chord::new(5, ChordQuality::Major),
    ];
    let beats = meter.beats_per_bar();
    let mut per_beat = Vec::new();
    for bar in 0..bars {
        for beat in 0..beats {
            let chorus = (6..10).contains(&bar);
            let index = if chorus && beat * 2 >= beats {
                bar as usize * 2 + 1
            } else {
                bar as usize
            };
            let chord = if bar + 1 == bars {
                progression[0]
            } else {
                progression[index % 4]
            };
            per_beat.push(chord);
        }
    }
    let scale = [0, 2, 4, 5, 7, 9, 11, 12];
    let beat_steps = meter.steps_per_beat();
    let mut melody = Vec::new();
    for bar in 2..10 {
        for beat in 0..beats {
            let i = (bar * beats + beat) as usize;
            melody.push(Note {
                start: bar * meter.steps_per_bar() + beat * beat_steps,
                duration: beat_steps,
                pitch: scale[i % scale.len()],
                velocity: 90,
            });
        }
    }
    LeadSheet {
        style,
        mood: Mood::Calm,
        tempo_bpm: 90.0,
        meter,
        key: Key::new(0, Mode::Major),
        bars,
        sections,
        chords: ChordTrack { per_beat },
        melody,
        looped: false,
    }
}

fn song(style: Style, meter: Meter, seed: u64) -> Song {
    let mut rng = SongRng::seed_from_u64(seed);
    arrange(&sheet(style, meter), &Stem::ALL, &mut rng)
}

fn every_case() -> Vec<(Style, Meter)> {
    Style::ALL
        .into_iter()
        .flat_map(|s| Meter::ALL.into_iter().map(move |m| (s, m)))
        .collect()
}

#[test]
fn every_style_and_meter_gives_five_valid_stems() {
    for (style, meter) in every_case() {
        for seed in 0..3 {
            let song = song(style, meter, seed);
            let stems: Vec<Stem> = song.stems.iter().map(|t| t.stem).collect();
            assert_eq!(stems, Stem::ALL.to_vec());
            assert_eq!(song.style, style);
            assert_eq!(song.bars, 12);
            for track in &song.stems {
                notes_to_planes(track.stem, meter, song.bars, &track.notes)
                    .unwrap_or_else(|e| panic!("{style} {meter} seed {seed}: {e}"));
                assert!(
                    !track.notes.is_empty(),
                    "{style} {meter} {} is empty",
                    track.stem
                );
                let mut sorted = track.notes.clone();
                sorted.sort();
                assert_eq!(sorted, track.notes);
            }
            if style == Style::Chiptune {
                assert_eq!(
                    song.stems[0].instrument,
                    crate::music::Instrument::ChipNoiseDrums
                );
            }
        }
    }
}

#[test]
fn only_the_requested_stems_appear() {
    let subsets: [&[Stem]; 5] = [
        &[],
        &[Stem::Lead],
        &[Stem::Texture, Stem::Drums],
        &[Stem::Bass, Stem::Chords, Stem::Lead],
        &[Stem::Chords],
    ];
    for style in Style::ALL {
        for subset in subsets {
            let mut rng = SongRng::seed_from_u64(7);
            let song = arrange(&sheet(style, Meter::FourFour), subset, &mut rng);
            let got: Vec<Stem> = song.stems.iter().map(|t| t.stem).collect();
            let want: Vec<Stem> = Stem::ALL
                .into_iter()
                .filter(|s| subset.contains(s))
                .collect();
            assert_eq!(got, want);
            for track in &song.stems {
                assert!(notes_to_planes(track.stem, song.meter, song.bars, &track.notes).is_ok());
            }
        }
    }
}

#[test]
fn a_stem_does_not_depend_on_which_others_were_asked_for() {
    let full = song(Style::Rock, Meter::FourFour, 3);
    let mut rng = SongRng::seed_from_u64(3);
    let drums_only = arrange(
        &sheet(Style::Rock, Meter::FourFour),
        &[Stem::Drums],
        &mut rng,
    );
    assert_eq!(full.stem(Stem::Drums), drums_only.stem(Stem::Drums));
}

#[test]
fn equal_seeds_give_equal_songs_and_different_seeds_differ() {
    for (style, meter) in every_case() {
        assert_eq!(song(style, meter, 11), song(style, meter, 11));
        assert_ne!(
            song(style, meter, 11),
            song(style, meter, 12),
            "{style} {meter}"
        );
    }
}

#[test]
fn pitched_notes_stay_in_the_key() {
    for (style, meter) in every_case() {
        for seed in 0..3 {
            let song = song(style, meter, seed);
            let pitched: Vec<&Note> = song
                .stems
                .iter()
                .filter(|t| t.stem.is_pitched())
                .flat_map(|t| t.notes.iter())
                .collect();
            let inside = pitched
                .iter()
                .filter(|n| song.key.contains_relative(n.pitch))
                .count();
            let share = inside as f64 / pitched.len().max(1) as f64;
            assert!(share >= 0.95, "{style} {meter}: {share:.3} in key");
        }
    }
}

fn is_tom(pitch: i32) -> bool {
    matches!(
        DrumClass::from_index(pitch),
        Some(DrumClass::LowTom | DrumClass::MidTom | DrumClass::HighTom)
    )
}

#[test]
fn drums_fill_before_each_section_and_crash_on_its_downbeat() {
    for (style, meter) in every_case() {
        for seed in 0..3 {
            let song = song(style, meter, seed);
            let drums = &song.stem(Stem::Drums).expect("drums").notes;
            let spb = meter.steps_per_bar();
            let beat = meter.steps_per_beat();
            for section in song.sections.iter().skip(1) {
                let downbeat = section.start_bar * spb;
                assert!(
                    drums
                        .iter()
                        .any(|n| n.start == downbeat && n.pitch == DrumClass::Crash.index()),
                    "{style} {meter}: no crash at bar {}",
                    section.start_bar
                );
                let last_beat = downbeat - beat..downbeat;
                let in_fill: Vec<&Note> = drums
                    .iter()
                    .filter(|n| last_beat.contains(&n.start))
                    .collect();
                let toms = in_fill.iter().any(|n| is_tom(n.pitch));
                let snares = in_fill
                    .iter()
                    .filter(|n| n.pitch == DrumClass::Snare.index())
                    .count();
                assert!(
                    toms || snares >= 3,
                    "{style} {meter} seed {seed}: no fill before bar {}",
                    section.start_bar
                );
            }
            // The final bar: a crash on its downbeat and nothing after it.
            let last = (song.bars - 1) * spb;
            assert!(
                drums
                    .iter()
                    .any(|n| n.start == last && n.pitch == DrumClass::Crash.index())
            );
            assert!(drums.iter().all(|n| n.start <= last));
        }
    }
}

fn notes_per_bar(song: &Song, kind: SectionKind) -> f64 {
    let spb = song.meter.steps_per_bar();
    let bars: Vec<u32> = song
        .sections
        .iter()
        .filter(|s| s.kind == kind)
        .flat_map(|s| s.start_bar..s.end_bar())
        .collect();
    let count = song
        .stems
        .iter()
        .flat_map(|t| t.notes.iter())
        .filter(|n| bars.contains(&(n.start / spb)))
        .count();
    count as f64 / bars.len().max(1) as f64
}

#[test]
fn choruses_are_denser_than_verses() {
    for style in Style::ALL {
        let (mut chorus, mut verse) = (0.0, 0.0);
        for meter in Meter::ALL {
            for seed in 0..4 {
                let song = song(style, meter, seed);
                chorus += notes_per_bar(&song, SectionKind::Chorus);
                verse += notes_per_bar(&song, SectionKind::Verse);
            }
        }
        assert!(chorus > verse, "{style}: chorus {chorus} <= verse {verse}");
    }
}

#[test]
fn bass_lands_on_the_root_at_chord_changes() {
    for (style, meter) in every_case() {
        for seed in 0..3 {
            let song = song(style, meter, seed);
            let bass = &song.stem(Stem::Bass).expect("bass").notes;
            let spb = meter.steps_per_bar();
            let beat = meter.steps_per_beat();
            let (mut changes, mut hits) = (0, 0);
            for (i, chord) in song.chords.per_beat.iter().enumerate() {
                let step = i as u32 * beat;
                let changed = i == 0 || song.chords.per_beat[i - 1] != *chord;
                let bar = step / spb;
                let bass_plays = bass.iter().any(|n| n.start / spb == bar);
                if !changed || !bass_plays {
                    continue;
                }
                changes += 1;
                if bass.iter().any(|n| {
                    n.start == step && (n.pitch - i32::from(chord.root)).rem_euclid(12) == 0
                }) {
                    hits += 1;
                }
            }
            assert!(changes > 0);
            let share = f64::from(hits) / f64::from(changes);
            assert!(
                share >= 0.7,
                "{style} {meter}: roots on {share:.2} of changes"
            );
        }
    }
}

#[test]
fn the_last_bar_holds_the_tonic() {
    for (style, meter) in every_case() {
        let song = song(style, meter, 5);
        let end = song.steps();
        let last = end - meter.steps_per_bar();
        let bass = &song.stem(Stem::Bass).expect("bass").notes;
        assert!(
            bass.iter()
                .any(|n| n.start == last && n.end() == end && n.pitch.rem_euclid(12) == 0),
            "{style} {meter}: bass does not hold the tonic"
        );
        let chords = &song.stem(Stem::Chords).expect("chords").notes;
        let held: Vec<&Note> = chords.iter().filter(|n| n.end() == end).collect();
        assert!(!held.is_empty(), "{style} {meter}: no final chord");
        assert!(held.iter().all(|n| n.start <= last));
        assert!(
            held.iter()
                .any(|n| n.pitch.rem_euclid(12) == 0 || n.pitch.rem_euclid(12) == 4)
        );
        assert!(
            held.iter()
                .all(|n| [0, 4, 7, 11, 2].contains(&n.pitch.rem_euclid(12))),
            "{style} {meter}: final chord is not the tonic"
        );
    }
}

#[test]
fn odd_sheets_do_not_panic() {
    for (style, meter) in every_case() {
        let mut one_bar = sheet(style, meter);
        one_bar.bars = 1;
        one_bar.sections = vec![Section {
            kind: SectionKind::Chorus,
            start_bar: 0,
            bars: 1,
            energy: 1.0,
        }];
        one_bar.melody.clear();
        one_bar.chords.per_beat.truncate(1);
        let mut empty = sheet(style, meter);
        empty.chords.per_beat.clear();
        empty.sections.clear();
        empty.melody.clear();
        let mut none = sheet(style, meter);
        none.bars = 0;
        none.sections.clear();
        let mut singles = sheet(style, meter);
        singles.sections = (0..singles.bars)
            .map(|b| Section {
                kind: SectionKind::ALL[b as usize % 5],
                start_bar: b,
                bars: 1,
                energy: (b as f32 / 11.0),
            })
            .collect();
        for lead_sheet in [one_bar, empty, none, singles] {
            let mut rng = SongRng::seed_from_u64(1);
            let song = arrange(&lead_sheet, &Stem::ALL, &mut rng);
            for track in &song.stems {
                assert!(notes_to_planes(track.stem, meter, song.bars, &track.notes).is_ok());
            }
        }
    }
}

#[test]
fn a_loop_plays_through_its_last_bar_into_its_first() {
    for (style, meter) in every_case() {
        let mut sheet = sheet(style, meter);
        sheet.looped = true;
        let song = arrange(&sheet, &Stem::ALL, &mut SongRng::seed_from_u64(1));
        let spb = meter.steps_per_bar();
        let last = (song.bars - 1) * spb;
        // No final hit: the drums keep time after the last downbeat, as in any other bar.
        let drums = &song.stem(Stem::Drums).expect("drums").notes;
        assert!(
            drums
                .iter()
                .any(|n| n.start > last + meter.steps_per_beat()),
            "{style} {meter}: the drums stop in the loop's last bar"
        );
        // Nothing is held past the loop's end.
        let end = song.bars * spb;
        for track in &song.stems {
            assert!(
                track.notes.iter().all(|n| n.start + n.duration <= end),
                "{style} {meter}: a {:?} note runs past the loop",
                track.stem
            );
        }
    }
}
