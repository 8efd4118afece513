//! Song -> Standard MIDI File (type 1, 480 ticks per quarter).

use super::{KEY_TEXT_PREFIX, TICKS_PER_QUARTER, TICKS_PER_STEP, key_signature_accidentals};
use crate::music::{DrumClass, Meter, Mode, Song, Stem, StemTrack};
use midly::num::{u4, u7, u15, u24, u28};
use midly::{
    Format, Header, MetaMessage, MidiMessage, Smf, Timing, Track, TrackEvent, TrackEventKind,
};

/// The drum channel of General MIDI (channel 10, index 9).
const DRUM_CHANNEL: u8 = 9;

/// Writes a type-1 Standard MIDI File: a conductor track, then one track per stem.
pub fn write_midi(song: &Song) -> Vec<u8> {
    let key_text = format!("{KEY_TEXT_PREFIX}{}", song.key);
    let mut tracks = vec![conductor_track(song, key_text.as_bytes())];
    let mut next_channel = 0u8;
    for track in &song.stems {
        let channel = if track.stem == Stem::Drums {
            DRUM_CHANNEL
        } else {
            // Pitched stems get channels 1, 2, ... skipping the drum channel; more than 15
            // pitched tracks (not made by refrain) share the last one.
            let c = next_channel.min(15);
            next_channel += 1;
            if next_channel == DRUM_CHANNEL {
                next_channel += 1;
            }
            c
        };
        tracks.push(stem_track(song, track, channel));
    }
    let smf = Smf {
        header: Header::new(
            Format::Parallel,
            Timing::Metrical(u15::new(TICKS_PER_QUARTER)),
        ),
        tracks,
    };
    let mut bytes = Vec::new();
    // Writing into a Vec cannot fail short of running out of memory, and every value above is
    // in range by construction.
    if smf.write_std(&mut bytes).is_err() {
        bytes.clear();
    }
    bytes
}

fn conductor_track<'a>(song: &Song, key_text: &'a [u8]) -> Track<'a> {
    let bpm = if song.tempo_bpm.is_finite() && song.tempo_bpm > 0.0 {
        song.tempo_bpm
    } else {
        120.0
    };
    let micros_per_quarter = (60e6 / bpm)
        .round()
        .clamp(1.0, f64::from(u24::max_value().as_int()));
    let (numerator, denominator) = song.meter.signature();
    // MIDI clocks (24 per quarter) per metronome click: a quarter in 4/4 and 3/4, a dotted
    // quarter in 6/8 so the click follows the felt beat.
    let clocks_per_click = match song.meter {
        Meter::FourFour | Meter::ThreeFour => 24,
        Meter::SixEight => 36,
    };
    let meta = |m: MetaMessage<'a>| TrackEvent {
        delta: u28::new(0),
        kind: TrackEventKind::Meta(m),
    };
    vec![
        meta(MetaMessage::TrackName(b"refrain")),
        meta(MetaMessage::Tempo(u24::new(micros_per_quarter as u32))),
        meta(MetaMessage::TimeSignature(
            numerator,
            denominator.trailing_zeros() as u8,
            clocks_per_click,
            8,
        )),
        meta(MetaMessage::KeySignature(
            key_signature_accidentals(song.key),
            song.key.mode == Mode::Minor,
        )),
        meta(MetaMessage::Text(key_text)),
        meta(MetaMessage::EndOfTrack),
    ]
}

fn stem_track<'a>(song: &Song, track: &'a StemTrack, channel: u8) -> Track<'a> {
    let channel_u4 = u4::new(channel);
    let mut events: Vec<TrackEvent<'a>> = vec![
        TrackEvent {
            delta: u28::new(0),
            kind: TrackEventKind::Meta(MetaMessage::TrackName(track.stem.name().as_bytes())),
        },
        TrackEvent {
            delta: u28::new(0),
            kind: TrackEventKind::Meta(MetaMessage::InstrumentName(
                track.instrument.name().as_bytes(),
            )),
        },
        TrackEvent {
            delta: u28::new(0),
            kind: TrackEventKind::Midi {
                channel: channel_u4,
                message: MidiMessage::ProgramChange {
                    program: u7::new(track.instrument.gm_program() & 0x7f),
                },
            },
        },
    ];
    // (tick, is_on, key, velocity): sorting puts note-offs (false) before note-ons at equal
    // ticks, so a repeated note is released before it is struck again.
    let mut timeline: Vec<(u64, bool, u8, u8)> = Vec::with_capacity(track.notes.len() * 2);
    for note in &track.notes {
        let key = if track.stem == Stem::Drums {
            match DrumClass::from_index(note.pitch) {
                Some(class) => class.gm_note(),
                None => continue,
            }
        } else {
            song.key.to_midi(note.pitch.clamp(-128, 128)).clamp(0, 127) as u8
        };
        let velocity = note.velocity.clamp(1, 127);
        let start = u64::from(note.start) * u64::from(TICKS_PER_STEP);
        let end =
            (u64::from(note.start) + u64::from(note.duration.max(1))) * u64::from(TICKS_PER_STEP);
        timeline.push((start, true, key, velocity));
        timeline.push((end, false, key, 0));
    }
    timeline.sort_unstable();
    let mut now = 0u64;
    for (tick, is_on, key, velocity) in timeline {
        let delta = (tick - now).min(u64::from(u28::max_value().as_int())) as u32;
        now = tick;
        let message = if is_on {
            MidiMessage::NoteOn {
                key: u7::new(key),
                vel: u7::new(velocity),
            }
        } else {
            MidiMessage::NoteOff {
                key: u7::new(key),
                vel: u7::new(64),
            }
        };
        events.push(TrackEvent {
            delta: u28::new(delta),
            kind: TrackEventKind::Midi {
                channel: channel_u4,
                message,
            },
        });
    }
    events.push(TrackEvent {
        delta: u28::new(0),
        kind: TrackEventKind::Meta(MetaMessage::EndOfTrack),
    });
    events
}
