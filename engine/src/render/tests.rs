//! Render tests: exact lengths, determinism, loudness and peak, stems summing to the mix, the
//! ring-out tail, every instrument, WAV round trip; plus an ignored speed check.

use super::*;
use crate::music::{
    ChordTrack, DrumClass, Instrument, Key, Meter, Mode, Note, Section, SectionKind, Style,
};

fn note(start: u32, duration: u32, pitch: i32, velocity: u8) -> Note {
    Note {
        start,
        duration,
        pitch,
        velocity,
    }
}

/// Every instrument; the exhaustive match makes this fail to compile when one is added.
fn all_instruments() -> Vec<Instrument> {
    use Instrument as I;
    let all = vec![
        I::DrumKit,
        I::ChipNoiseDrums,
        I::SubBass,
        I::AnalogBass,
        I::FingerBass,
        I::UprightBass,
        I::ChipTriangleBass,
        I::ElectricPiano,
        I::Piano,
        I::Organ,
        I::WarmPad,
        I::Strings,
        I::CleanGuitar,
        I::OverdriveGuitar,
        I::SawLead,
        I::SquareLead,
        I::ChipPulseLead,
        I::Flute,
        I::Fiddle,
        I::Horn,
        I::Vibraphone,
        I::Bell,
        I::PluckArp,
        I::Choir,
    ];
    for i in &all {
        match i {
            I::DrumKit
            | I::ChipNoiseDrums
            | I::SubBass
            | I::AnalogBass
            | I::FingerBass
            | I::UprightBass
            | I::ChipTriangleBass
            | I::ElectricPiano
            | I::Piano
            | I::Organ
            | I::WarmPad
            | I::Strings
            | I::CleanGuitar
            | I::OverdriveGuitar
            | I::SawLead
            | I::SquareLead
            | I::ChipPulseLead
            | I::Flute
            | I::Fiddle
            | I::Horn
            | I::Vibraphone
            | I::Bell
            | I::PluckArp
            | I::Choir => {}
        }
    }
    all
}

/// A five-stem song: sixteenth hats with kick and snare, eighth-note bass, four-voice chords
/// a bar long, a lead line and a texture arpeggio. The chords and lead end on the last bar line.
fn band_song(bars: u32, tempo_bpm: f64, instruments: [Instrument; 5]) -> Song {
    let meter = Meter::FourFour;
    let spb = meter.steps_per_bar();
    let stems = [
        Stem::Drums,
        Stem::Bass,
        Stem::Chords,
        Stem::Lead,
        Stem::Texture,
    ];
    let mut tracks: Vec<StemTrack> = stems
        .iter()
        .zip(instruments)
        .map(|(&s, i)| StemTrack::new(s, i))
        .collect();
    let progression = [0, 5, -3, -5];
    for bar in 0..bars {
        let b = bar * spb;
        let root = progression[(bar % 4) as usize];
        for step in 0..spb {
            tracks[0].notes.push(note(
                b + step,
                1,
                DrumClass::ClosedHat.index(),
                60 + 30 * (step % 2 == 0) as u8,
            ));
        }
        for step in [0, 8, 10] {
            tracks[0]
                .notes
                .push(note(b + step, 1, DrumClass::Kick.index(), 115));
        }
        for step in [4, 12] {
            tracks[0]
                .notes
                .push(note(b + step, 1, DrumClass::Snare.index(), 105));
        }
        for step in (0..spb).step_by(2) {
            tracks[1].notes.push(note(
                b + step,
                2,
                root - 24 + 12 * ((step / 2) % 2) as i32,
                100,
            ));
        }
        for p in [0, 4, 7, 11] {
            tracks[2].notes.push(note(b, spb, root + p, 70));
        }
        for (i, step) in [0u32, 3, 6, 8, 12].into_iter().enumerate() {
            let len = if step == 12 { 4 } else { 2 };
            tracks[3]
                .notes
                .push(note(b + step, len, 12 + [0, 2, 4, 7, 9][i], 95));
        }
        for step in (0..spb).step_by(4) {
            tracks[4].notes.push(note(
                b + step + 2,
                2,
                24 + root + [0, 7, 12, 16][(step / 4) as usize],
                60,
            ));
        }
    }
    for t in &mut tracks {
        t.notes.sort_unstable_by_key(|n| (n.start, n.pitch));
    }
    Song {
        style: Style::Lofi,
        tempo_bpm,
        meter,
        key: Key::new(9, Mode::Minor),
        bars,
        sections: vec![Section {
            kind: SectionKind::Verse,
            start_bar: 0,
            bars,
            energy: 0.6,
        }],
        chords: ChordTrack::default(),
        stems: tracks,
    }
}

const BAND: [Instrument; 5] = [
    Instrument::DrumKit,
    Instrument::AnalogBass,
    Instrument::WarmPad,
    Instrument::SawLead,
    Instrument::PluckArp,
];

fn song_frames(song: &Song, rate: u32) -> u64 {
    (f64::from(song.steps()) * song.step_seconds() * f64::from(rate)).round() as u64
}

fn rms(samples: &[f32]) -> f64 {
    if samples.is_empty() {
        return 0.0;
    }
    (samples
        .iter()
        .map(|&s| f64::from(s) * f64::from(s))
        .sum::<f64>()
        / samples.len() as f64)
        .sqrt()
}

fn options(rate: u32) -> RenderOptions {
    RenderOptions {
        sample_rate: rate,
        ..RenderOptions::default()
    }
}

#[test]
fn renders_exactly_the_requested_frames() {
    let song = band_song(2, 120.0, BAND);
    for rate in [44_100, 48_000] {
        let full = song_frames(&song, rate);
        for frames in [
            0,
            1,
            999,
            full / 2,
            full,
            full + 1,
            full + u64::from(rate) * 2,
        ] {
            let r = render_song(&song, frames, &options(rate)).unwrap();
            assert_eq!(r.mix.frames() as u64, frames);
            assert_eq!(r.mix.sample_rate, rate);
            assert_eq!(r.stems.len(), 5);
            for (_, s) in &r.stems {
                assert_eq!(s.frames() as u64, frames);
            }
            assert!(r.loudness_lufs.is_finite() && r.true_peak_dbtp.is_finite());
        }
    }
}

#[test]
fn rendering_is_bit_identical() {
    let song = band_song(2, 97.0, BAND);
    let frames = song_frames(&song, 48_000) + 24_000;
    let a = render_song(&song, frames, &options(48_000)).unwrap();
    let b = render_song(&song, frames, &options(48_000)).unwrap();
    let bits = |b: &StereoBuffer| b.samples.iter().map(|s| s.to_bits()).collect::<Vec<_>>();
    assert_eq!(bits(&a.mix), bits(&b.mix));
    for ((_, x), (_, y)) in a.stems.iter().zip(&b.stems) {
        assert_eq!(bits(x), bits(y));
    }
    assert_eq!(a.loudness_lufs.to_bits(), b.loudness_lufs.to_bits());
}

#[test]
fn mix_meets_loudness_target_under_the_ceiling_and_stems_sum_to_the_bus() {
    for (target, ceiling) in [(-14.0, -1.0), (-20.0, -1.0), (-8.0, -1.0), (-16.0, -3.0)] {
        let song = band_song(4, 110.0, BAND);
        let opts = RenderOptions {
            sample_rate: 48_000,
            target_lufs: target,
            true_peak_ceiling_dbtp: ceiling,
            ..RenderOptions::default()
        };
        let r = render_song(&song, song_frames(&song, 48_000) + 48_000, &opts).unwrap();
        assert!(r.mix.samples.iter().all(|s| s.is_finite()));
        // Checked with the ebur128 crate's own meter and true-peak interpolator.
        let (loudness, peak) = master::measure(&r.mix).unwrap();
        let (loudness, peak) = (loudness.unwrap(), peak.unwrap());
        assert!(peak <= ceiling, "true peak {peak} over ceiling {ceiling}");
        // -8 LUFS under -1 dBTP asks more than a limiter gives without distortion: the
        // master gets as close as its passes allow.
        let tolerance = if target > -10.0 { 2.0 } else { 0.5 };
        assert!(
            (loudness - target).abs() <= tolerance,
            "loudness {loudness} for target {target}, peak {peak}"
        );
        assert!(r.mix.samples.iter().all(|s| s.abs() < 1.0), "no clipping");
        // The report is honest.
        assert!((r.loudness_lufs - loudness).abs() < 0.05);
        assert!((r.true_peak_dbtp - peak).abs() < 0.2);
        // The stems are unclipped and sum to the mix bus, which the master gain and limiter
        // turn into the mix: scaled back by the gain, the bus sits near the mix wherever the
        // limiter left it alone.
        let mut bus = vec![0.0f32; r.mix.samples.len()];
        for (_, s) in &r.stems {
            assert!(s.samples.iter().all(|x| x.abs() <= 0.9));
            for (a, b) in bus.iter_mut().zip(&s.samples) {
                *a += b;
            }
        }
        let gain = 10f64.powf(r.master_gain_db / 20.0);
        let correlation: f64 = bus
            .iter()
            .zip(&r.mix.samples)
            .map(|(b, m)| f64::from(*b) * gain * f64::from(*m))
            .sum::<f64>()
            / (rms(&r.mix.samples).powi(2) * r.mix.samples.len() as f64);
        assert!(correlation > 0.8, "{correlation}");
    }
}

/// Level (dB) and spectral centroid (Hz) of one 1024-frame window of a mono mixdown.
fn window_features(samples: &[f32], frame: usize, rate: f32) -> (f64, f64) {
    let n = 1024;
    let mono: Vec<f64> = (0..n)
        .map(|i| f64::from(samples[(frame + i) * 2] + samples[(frame + i) * 2 + 1]) * 0.5)
        .collect();
    let level = 10.0 * (mono.iter().map(|x| x * x).sum::<f64>() / n as f64 + 1e-12).log10();
    let (mut weighted, mut total) = (0.0, 0.0);
    for k in 1..n / 2 {
        let (mut re, mut im) = (0.0, 0.0);
        for (i, x) in mono.iter().enumerate() {
            let hann = 0.5 - 0.5 * (std::f64::consts::TAU * i as f64 / n as f64).cos();
            let angle = std::f64::consts::TAU * (k * i) as f64 / n as f64;
            re += x * hann * angle.cos();
            im -= x * hann * angle.sin();
        }
        let magnitude = (re * re + im * im).sqrt();
        weighted += magnitude * k as f64 * f64::from(rate) / n as f64;
        total += magnitude;
    }
    (level, weighted / total.max(1e-12))
}

#[test]
fn a_loop_wraps_without_a_jump_in_level_or_colour() {
    let song = band_song(4, 120.0, BAND);
    let frames = song_frames(&song, 48_000);
    let options = RenderOptions {
        looped: true,
        ..RenderOptions::default()
    };
    let r = render_song(&song, frames, &options).unwrap();
    assert_eq!(r.mix.frames() as u64, frames);
    let frames = frames as usize;
    // The wrap: the loop's last window followed by its first, as a player hears it.
    let mut wrap = r.mix.samples[(frames - 1024) * 2..].to_vec();
    wrap.extend_from_slice(&r.mix.samples[..1024 * 2]);
    let (end, start) = (
        window_features(&wrap, 0, 48_000.0),
        window_features(&wrap, 1024, 48_000.0),
    );
    let jump = ((end.0 - start.0).abs(), (end.1 - start.1).abs());
    // Neighbouring windows inside the loop, one per beat, give the scale of normal change.
    let mut level_steps = Vec::new();
    let mut colour_steps = Vec::new();
    for beat in 1..15 {
        let at = beat * 24_000 - 1024;
        let (a, b) = (
            window_features(&r.mix.samples, at, 48_000.0),
            window_features(&r.mix.samples, at + 1024, 48_000.0),
        );
        level_steps.push((a.0 - b.0).abs());
        colour_steps.push((a.1 - b.1).abs());
    }
    let largest = |v: &[f64]| v.iter().cloned().fold(0.0, f64::max);
    assert!(
        jump.0 <= largest(&level_steps),
        "level jump {} vs {level_steps:?}",
        jump.0
    );
    assert!(
        jump.1 <= largest(&colour_steps),
        "colour jump {} vs {colour_steps:?}",
        jump.1
    );
    // Without wrapping, the start would begin dry: the loop's start carries the end's tails.
    let plain = render_song(&song, frames as u64, &RenderOptions::default()).unwrap();
    assert_ne!(plain.mix.samples[..2048], r.mix.samples[..2048]);
}

#[test]
fn silence_reports_finite_floor_values() {
    let mut song = band_song(1, 120.0, BAND);
    for t in &mut song.stems {
        t.notes.clear();
    }
    let r = render_song(&song, 48_000, &options(48_000)).unwrap();
    assert_eq!(r.loudness_lufs, -70.0);
    assert_eq!(r.true_peak_dbtp, -70.0);
    assert!(r.mix.samples.iter().all(|&s| s == 0.0));
    assert!(
        serde_json::to_string(&r.loudness_lufs)
            .unwrap()
            .contains("-70")
    );
}

#[test]
fn last_notes_ring_out_and_decay_over_the_tail() {
    let song = band_song(2, 120.0, BAND);
    let rate = 48_000;
    let end = song_frames(&song, rate) as usize;
    let frames = end + 2 * rate as usize;
    let r = render_song(&song, frames as u64, &options(rate)).unwrap();
    let window = |from: usize| rms(&r.mix.samples[from * 2..(from + 4800) * 2]);
    let just_after = window(end);
    let later = window(end + rate as usize);
    let last = window(frames - 4800);
    assert!(just_after > 1e-3, "tail silent: {just_after}");
    assert!(later < just_after, "{later} >= {just_after}");
    assert!(last < later * 0.5, "{last} vs {later}");
    let final_frame = &r.mix.samples[(frames - 1) * 2..];
    assert!(final_frame.iter().all(|s| s.abs() < 1e-3));
}

#[test]
fn notes_past_the_end_are_cut() {
    let song = band_song(2, 120.0, BAND);
    let frames = song_frames(&song, 48_000) / 3;
    let r = render_song(&song, frames, &options(48_000)).unwrap();
    assert_eq!(r.mix.frames() as u64, frames);
    assert!(r.loudness_lufs > -40.0);
}

#[test]
fn every_instrument_renders_a_finite_audible_note() {
    for instrument in all_instruments() {
        let voice = Voice::for_instrument(instrument);
        let pitches: Vec<i32> =
            if matches!(instrument, Instrument::DrumKit | Instrument::ChipNoiseDrums) {
                DrumClass::ALL.iter().map(|c| c.index()).collect()
            } else {
                vec![28, 45, 60, 72, 96]
            };
        for pitch in pitches {
            for rate in [44_100.0, 48_000.0] {
                let event = NoteEvent {
                    pitch,
                    velocity: 0.8,
                    gate: (0.5 * rate) as usize,
                    sample_rate: rate,
                    seed: 7,
                };
                let length = voice.sounding_samples(&event);
                assert!(length > 0, "{instrument:?} {pitch}: no length");
                let mut out = vec![1.0f32; length];
                voice.render(&event, &mut out, &mut Scratch::default());
                assert!(
                    out.iter().all(|s| s.is_finite()),
                    "{instrument:?} {pitch} not finite"
                );
                let peak = out.iter().fold(0.0f32, |m, s| m.max(s.abs()));
                let level = rms(&out);
                assert!(level > 1e-3, "{instrument:?} {pitch} silent: rms {level}");
                assert!(peak < 4.0, "{instrument:?} {pitch} peak {peak}");
                // The tail has died away by the end of the rendered length.
                let tail = rms(&out[length - length / 50..]);
                assert!(
                    tail < level,
                    "{instrument:?} {pitch}: tail {tail} vs {level}"
                );
            }
        }
    }
}

#[test]
fn every_instrument_renders_through_the_song_path() {
    for instrument in all_instruments() {
        let stem = if matches!(instrument, Instrument::DrumKit | Instrument::ChipNoiseDrums) {
            Stem::Drums
        } else {
            Stem::Lead
        };
        let mut song = band_song(1, 120.0, BAND);
        song.stems = vec![StemTrack {
            stem,
            instrument,
            notes: vec![note(0, 4, 0, 100), note(4, 4, 1, 90)],
        }];
        let r = render_song(&song, 48_000, &options(48_000)).unwrap();
        assert!(
            r.loudness_lufs > -30.0,
            "{instrument:?}: {}",
            r.loudness_lufs
        );
        assert!(r.true_peak_dbtp <= -0.9);
    }
}

#[test]
fn band_limited_saw_keeps_aliasing_low() {
    // A 4.7 kHz saw at 48 kHz: harmonics above Nyquist fold back to inharmonic frequencies.
    // The 10th folds to 1 kHz, where the ear is most sensitive; the 6th to 19.8 kHz. Both are
    // compared with the fundamental, and with a naive (non-band-limited) saw.
    let rate = 48_000.0f32;
    let f = 4_700.0f32;
    let dt = f / rate;
    let render = |band_limited: bool| -> Vec<f32> {
        let mut phase = 0.0;
        (0..48_000)
            .map(|_| {
                let s = if band_limited {
                    dsp::saw(phase, dt)
                } else {
                    2.0 * phase - 1.0
                };
                dsp::advance(&mut phase, dt);
                s
            })
            .collect()
    };
    let level_db = |signal: &[f32], freq: f32| {
        let (mut re, mut im) = (0.0f64, 0.0f64);
        for (i, &s) in signal.iter().enumerate() {
            let w = std::f64::consts::TAU * f64::from(freq) * i as f64 / f64::from(rate);
            re += f64::from(s) * w.cos();
            im += f64::from(s) * w.sin();
        }
        10.0 * (re * re + im * im).log10()
    };
    let (blep, naive) = (render(true), render(false));
    for harmonic in [6.0f32, 10.0] {
        let alias = (harmonic * f) % rate;
        let alias = alias.min(rate - alias);
        let blep_db = level_db(&blep, alias) - level_db(&blep, f);
        let naive_db = level_db(&naive, alias) - level_db(&naive, f);
        assert!(
            blep_db < naive_db - 10.0,
            "harmonic {harmonic}: {blep_db} vs naive {naive_db}"
        );
        if harmonic == 10.0 {
            assert!(blep_db < -40.0, "audible alias at {alias} Hz: {blep_db} dB");
        }
    }
}

#[test]
fn bad_options_give_errors_in_words() {
    let song = band_song(1, 120.0, BAND);
    let e = render_song(&song, 10, &options(0)).unwrap_err().to_string();
    assert!(e.contains("sample rate"), "{e}");
    let e = render_song(&song, u64::MAX, &options(48_000))
        .unwrap_err()
        .to_string();
    assert!(e.contains("minutes"), "{e}");
    let mut fast = song.clone();
    fast.tempo_bpm = f64::NAN;
    assert!(render_song(&fast, 10, &options(48_000)).is_err());
    let bad = RenderOptions {
        target_lufs: f64::INFINITY,
        ..RenderOptions::default()
    };
    assert!(render_song(&song, 10, &bad).is_err());
}

#[test]
fn wav_round_trips_through_hound_as_24_bit_stereo() {
    let song = band_song(1, 120.0, BAND);
    let r = render_song(&song, 44_100, &options(44_100)).unwrap();
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("mix.wav");
    write_wav(&path, &r.mix).unwrap();
    let mut reader = hound::WavReader::open(&path).unwrap();
    let spec = reader.spec();
    assert_eq!(spec.channels, 2);
    assert_eq!(spec.bits_per_sample, 24);
    assert_eq!(spec.sample_format, hound::SampleFormat::Int);
    assert_eq!(spec.sample_rate, 44_100);
    assert_eq!(reader.duration(), 44_100);
    let samples: Vec<i32> = reader.samples::<i32>().map(Result::unwrap).collect();
    assert_eq!(samples.len(), r.mix.samples.len());
    for (&read, &written) in samples.iter().zip(&r.mix.samples) {
        assert!((read as f32 / 8_388_607.0 - written.clamp(-1.0, 1.0)).abs() < 1e-6);
    }
    // Out-of-range samples are clamped, and a bad path is an error naming it.
    let loud = StereoBuffer {
        sample_rate: 48_000,
        samples: vec![2.0, -2.0, f32::NAN, 0.5],
    };
    write_wav(&path, &loud).unwrap();
    let read: Vec<i32> = hound::WavReader::open(&path)
        .unwrap()
        .samples::<i32>()
        .map(Result::unwrap)
        .collect();
    assert_eq!(read[..3], [8_388_607, -8_388_607, 0]);
    let missing = dir.path().join("no/such/dir/mix.wav");
    let e = write_wav(&missing, &loud).unwrap_err().to_string();
    assert!(e.contains("no/such/dir"), "{e}");
}

/// Speed check: `cargo test --release -p refrain-engine render_speed -- --ignored --nocapture`.
#[test]
#[ignore = "speed measurement; run in release"]
fn render_speed_three_minute_song() {
    let tempo = 120.0;
    let bars = 90; // 90 bars of 4/4 at 120 bpm = 180 s
    for (name, instruments) in [
        ("pad/saw/pluck", BAND),
        (
            "epiano/piano/organ",
            [
                Instrument::DrumKit,
                Instrument::FingerBass,
                Instrument::ElectricPiano,
                Instrument::Piano,
                Instrument::Organ,
            ],
        ),
    ] {
        let song = band_song(bars, tempo, instruments);
        let frames = song_frames(&song, 48_000) + 96_000;
        let started = std::time::Instant::now();
        let r = render_song(&song, frames, &options(48_000)).unwrap();
        let seconds = started.elapsed().as_secs_f64();
        for (index, track) in song.stems.iter().enumerate() {
            let t = std::time::Instant::now();
            let _ = render_stem(&song, track, index, frames as usize, 48_000, false);
            println!(
                "  {:?}: {:.3} s",
                track.instrument,
                t.elapsed().as_secs_f64()
            );
        }
        let t = std::time::Instant::now();
        let _ = master::measure(&r.mix).unwrap();
        println!(
            "  loudness and true peak: {:.3} s",
            t.elapsed().as_secs_f64()
        );
        println!(
            "{name}: rendered {:.1} s of 5-stem audio at 48 kHz in {seconds:.3} s ({:.0}x real time); \
             {:.2} LUFS, {:.2} dBTP",
            frames as f64 / 48_000.0,
            frames as f64 / 48_000.0 / seconds,
            r.loudness_lufs,
            r.true_peak_dbtp
        );
    }
}

#[test]
fn hostile_songs_render_without_panicking() {
    let mut song = band_song(1, 120.0, BAND);
    song.bars = u32::MAX;
    song.stems[1]
        .notes
        .push(note(u32::MAX - 1, u32::MAX, i32::MAX, 255));
    song.stems[0].notes.push(note(0, 0, 99, 0));
    song.stems[2].notes.push(note(3, u32::MAX, i32::MIN, 1));
    let r = render_song(&song, 24_000, &options(48_000)).unwrap();
    assert!(r.mix.samples.iter().all(|s| s.is_finite()));
    assert!(!crate::midi::write_midi(&song).is_empty());
}
