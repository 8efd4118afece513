//! Session tests over a mock sink: the test pulls exact buffer sizes itself, so every frame
//! count is known.

use super::*;
use crate::music::Stem;
use crate::render::{StereoBuffer, master};

fn request(seed: u64) -> Request {
    Request {
        style: Some(Style::Synthwave),
        bpm: Some(120.0),
        seed,
        ..Request::default()
    }
}

/// Pulls `frames` frames in 256-frame buffers, waiting for the workers as a file writer would.
fn pull_frames(audio: &mut SessionAudio, frames: usize, into: &mut Vec<f32>) {
    let mut buffer = [0.0f32; 512];
    let mut left = frames;
    while left > 0 {
        let n = left.min(256);
        audio.pull_wait(&mut buffer[..n * 2], Duration::from_secs(20));
        into.extend_from_slice(&buffer[..n * 2]);
        left -= n;
    }
}

#[test]
fn controls_land_on_their_boundaries_to_the_sample() {
    let (mut audio, mut handle) = SessionBuilder::new(request(3))
        .intensity(1.0)
        .start()
        .unwrap();
    let grid = handle.grid();
    let mut out = Vec::new();
    pull_frames(&mut audio, 24_000, &mut out);
    let quiet = handle.set_intensity(0.2, Quantum::Bar).unwrap();
    let hit = handle.send(Control::Stinger, Quantum::Beat).unwrap();
    assert_eq!(grid.bar_frame(grid.bar_at(quiet)), quiet);
    assert_eq!(grid.beat_frame(grid.beat_at(hit)), hit);
    pull_frames(&mut audio, 48_000 * 3, &mut out);
    let next = handle.send(Control::NextSection, Quantum::Bar).unwrap();
    pull_frames(&mut audio, 48_000 * 3, &mut out);
    let pause = handle.send(Control::Pause, Quantum::Beat).unwrap();
    pull_frames(&mut audio, 48_000, &mut out);
    // Paused exactly on the beat: the music position stops there and silence follows.
    assert_eq!(handle.position().frame, pause);
    assert!(out[out.len() - 2000..].iter().all(|s| *s == 0.0));
    handle.send(Control::Resume, Quantum::Beat).unwrap();
    pull_frames(&mut audio, 4_800, &mut out);
    assert_eq!(handle.position().frame, pause + 4_800);

    let transitions = handle.transitions();
    assert_eq!(transitions.len(), 5, "{transitions:?}");
    for t in &transitions {
        let actual = t.actual_frame.expect("every control landed");
        match t.quantum {
            Quantum::Beat => assert_eq!(grid.beat_frame(grid.beat_at(actual)), actual),
            _ => assert_eq!(grid.bar_frame(grid.bar_at(actual)), actual),
        }
        assert!(actual >= t.requested_frame);
    }
    let by = |id: u64| transitions.iter().find(|t| t.id == id).unwrap();
    // Intensity, stinger and pause never wait for music: they land where they were asked.
    for id in [0, 1, 3] {
        assert_eq!(
            by(id).actual_frame,
            Some(by(id).requested_frame),
            "{:?}",
            by(id)
        );
    }
    assert_eq!(by(0).requested_frame, quiet);
    assert_eq!(by(1).requested_frame, hit);
    // The next section was already written: it lands on the bar asked for too.
    assert_eq!(by(2).requested_frame, next);
    assert_eq!(by(2).actual_frame, Some(next));
    let sections: Vec<u64> = handle
        .events()
        .into_iter()
        .filter_map(|e| match e {
            SessionEvent::Section { start_frame, .. } => Some(start_frame),
            _ => None,
        })
        .collect();
    assert!(sections.contains(&next), "{sections:?}");
    assert_eq!(handle.underruns(), 0);
    // After the intensity drop only the pad sounds: much quieter than before it.
    let power = |from: u64, to: u64| -> f64 {
        out[from as usize * 2..to as usize * 2]
            .iter()
            .map(|s| f64::from(*s).powi(2))
            .sum::<f64>()
    };
    assert!(power(quiet - 20_000, quiet) > 0.0);
}

#[test]
fn a_streamed_minute_meets_the_loudness_and_peak_bounds_and_ends_when_asked() {
    let (mut audio, mut handle) = SessionBuilder::new(request(5))
        .intensity(0.6)
        .start()
        .unwrap();
    let mut out = Vec::new();
    for (i, intensity) in [0.3f32, 1.0, 0.5, 0.8].into_iter().enumerate() {
        pull_frames(&mut audio, 48_000 * 10, &mut out);
        let quantum = if i % 2 == 0 {
            Quantum::Bar
        } else {
            Quantum::Beat
        };
        handle.set_intensity(intensity, quantum).unwrap();
    }
    pull_frames(&mut audio, 48_000 * 20, &mut out);
    let buffer = StereoBuffer {
        sample_rate: 48_000,
        samples: out,
    };
    let (loudness, peak) = master::measure(&buffer).unwrap();
    let loudness = loudness.unwrap();
    assert!((loudness + 14.0).abs() <= 0.5, "{loudness} LUFS");
    assert!(peak.unwrap() <= -1.0, "{peak:?} dBTP");
    assert_eq!(handle.underruns(), 0);

    handle.send(Control::End, Quantum::Bar).unwrap();
    let mut tail = Vec::new();
    let mut buffer = [0.0f32; 512];
    let started = Instant::now();
    while !audio.is_finished() {
        assert!(started.elapsed() < Duration::from_secs(60), "never ended");
        audio.pull_wait(&mut buffer, Duration::from_secs(20));
        tail.extend_from_slice(&buffer);
    }
    let end = handle.transitions().into_iter().last().unwrap();
    assert_eq!(end.control, "end");
    assert_eq!(end.actual_frame, Some(end.requested_frame), "{end:?}");
    assert!(tail.iter().rev().take(1000).all(|s| s.abs() < 1e-3));
}

#[test]
fn bad_settings_are_refused_in_words() {
    let err = |b: SessionBuilder| b.start().err().unwrap().to_string();
    assert!(err(SessionBuilder::new(request(1)).intensity(2.0)).contains("intensity"));
    assert!(err(SessionBuilder::new(request(1)).sample_rate(10)).contains("sample rate"));
    assert!(err(SessionBuilder::new(request(1)).lead_frames(3)).contains("lead"));
    let bad = Request {
        bpm: Some(5000.0),
        ..request(1)
    };
    assert!(err(SessionBuilder::new(bad)).contains("tempo"));
    let (_audio, mut handle) = SessionBuilder::new(Request {
        stems: Some(vec![Stem::Bass]),
        ..request(1)
    })
    .start()
    .unwrap();
    assert!(handle.set_intensity(f32::NAN, Quantum::Bar).is_err());
    assert!("sometime".parse::<Quantum>().is_err());
}

/// The sections placed so far: (start frame, kind, style, mood).
fn sections_placed(handle: &SessionHandle, into: &mut Vec<(u64, SectionKind, Style, Mood)>) {
    for event in handle.events() {
        if let SessionEvent::Section {
            start_frame,
            kind,
            style,
            mood,
            ..
        } = event
        {
            into.push((start_frame, kind, style, mood));
        }
    }
}

#[test]
fn next_section_mood_style_and_end_land_exactly_on_their_requested_frame() {
    let (mut audio, mut handle) = SessionBuilder::new(Request {
        mood: Some(Mood::Happy),
        ..request(11)
    })
    .intensity(0.8)
    .start()
    .unwrap();
    let grid = handle.grid();
    let mut out = Vec::new();
    let mut sections = Vec::new();
    pull_frames(&mut audio, 48_000 * 2, &mut out);
    let next = handle.send(Control::NextSection, Quantum::Bar).unwrap();
    pull_frames(&mut audio, 48_000 * 3, &mut out);
    // A beat quantum means the next bar for a change that needs a section to start.
    let mood = handle
        .send(Control::Mood(Mood::Dark), Quantum::Beat)
        .unwrap();
    pull_frames(&mut audio, 48_000 * 3, &mut out);
    let style = handle
        .send(Control::Style(Style::Lofi), Quantum::Section)
        .unwrap();
    while handle.position().frame < style + 48_000 {
        pull_frames(&mut audio, 48_000, &mut out);
    }
    let end = handle.send(Control::End, Quantum::Bar).unwrap();
    let started = Instant::now();
    while !audio.is_finished() {
        assert!(started.elapsed() < Duration::from_secs(120), "never ended");
        pull_frames(&mut audio, 4_800, &mut out);
    }
    sections_placed(&handle, &mut sections);

    for frame in [next, mood, style, end] {
        assert_eq!(
            grid.bar_frame(grid.bar_at(frame)),
            frame,
            "{frame} is no bar"
        );
    }
    let transitions = handle.transitions();
    assert_eq!(transitions.len(), 4, "{transitions:?}");
    for t in &transitions {
        assert_eq!(t.actual_frame, Some(t.requested_frame), "{t:?}");
        assert!(!t.late, "{t:?}");
    }
    assert_eq!(handle.stats().late, 0);
    let at = |frame: u64| {
        sections
            .iter()
            .find(|s| s.0 == frame)
            .copied()
            .unwrap_or_else(|| panic!("no section starts at {frame}: {sections:?}"))
    };
    assert_eq!(at(mood).3, Mood::Dark);
    assert_eq!(at(style).2, Style::Lofi);
    assert_eq!(at(style).3, Mood::Dark);
    assert_eq!(at(end).1, SectionKind::Outro);
    // Nothing written before a change plays after it.
    for s in sections.iter().filter(|s| s.0 > mood) {
        assert_eq!(s.3, Mood::Dark, "{sections:?}");
    }
    for s in sections.iter().filter(|s| s.0 > style) {
        assert_eq!(s.2, Style::Lofi, "{sections:?}");
    }
    assert_eq!(handle.underruns(), 0);
}

/// Pulls 256-frame buffers at the real-time rate (never waiting for the engine, as an audio
/// callback) until the music has reached `frame`.
fn pull_in_real_time_until(audio: &mut SessionAudio, frame: u64) {
    let mut buffer = [0.0f32; 512];
    let period = Duration::from_secs_f64(256.0 / 48_000.0);
    let started = Instant::now();
    let mut pulls = 0;
    while audio.shared.music_frame.load(Ordering::Relaxed) < frame {
        assert!(
            started.elapsed() < Duration::from_secs(90),
            "the music stalled"
        );
        if let Some(wait) = (started + period * pulls).checked_duration_since(Instant::now()) {
            std::thread::sleep(wait);
        }
        audio.pull(&mut buffer);
        pulls += 1;
    }
}

#[test]
fn music_changes_land_exactly_for_a_real_time_reader() {
    // A fixed budget generous enough for a test machine busy with the other tests (`refrain
    // play` measures it; docs/LIVE.md has runs with the measured one).
    let (mut audio, mut handle) = SessionBuilder::new(request(13))
        .intensity(0.8)
        .compose_budget(Some(Duration::from_secs(6)))
        .start()
        .unwrap();
    pull_in_real_time_until(&mut audio, 48_000 * 3);
    let mood = handle
        .send(Control::Mood(Mood::Calm), Quantum::Bar)
        .unwrap();
    assert_eq!(handle.stats().compose_budget_ms, 6000.0);
    assert!(mood >= 48_000 * 9, "{mood}");
    pull_in_real_time_until(&mut audio, 48_000 * 7 / 2);
    let next = handle.send(Control::NextSection, Quantum::Bar).unwrap();
    pull_in_real_time_until(&mut audio, mood.max(next) + 24_000);
    let transitions = handle.transitions();
    assert_eq!(transitions.len(), 2, "{transitions:?}");
    for t in &transitions {
        assert_eq!(t.actual_frame, Some(t.requested_frame), "{t:?}");
        assert!(!t.late);
    }
    assert_eq!(handle.stats().late, 0);
}

/// The arranger, slowed down: a composer that cannot keep up.
struct SlowComposer(Duration);

impl ChapterComposer for SlowComposer {
    fn compose(
        &mut self,
        plan: &plan::Plan,
        sheet: &crate::compose::LeadSheet,
    ) -> Result<Composed, Error> {
        std::thread::sleep(self.0);
        ArrangerComposer.compose(plan, sheet)
    }

    fn name(&self) -> &'static str {
        "slow arranger"
    }
}

#[test]
fn a_change_whose_music_is_late_moves_to_a_later_bar_and_counts_as_late() {
    let (mut audio, mut handle) = SessionBuilder::new(request(17))
        .compose_budget(Some(Duration::ZERO))
        .composer(Box::new(|| {
            Ok(Box::new(SlowComposer(Duration::from_millis(1500))) as Box<dyn ChapterComposer>)
        }))
        .start()
        .unwrap();
    let grid = handle.grid();
    // A reader that takes whatever is there as fast as the feeder makes it, without telling
    // the feeder to wait: the slow composer cannot have the new mood ready in time.
    let mut buffer = [0.0f32; 512];
    let mut pull = |audio: &mut SessionAudio, until: u64| {
        let started = Instant::now();
        while audio.shared.music_frame.load(Ordering::Relaxed) < until {
            assert!(started.elapsed() < Duration::from_secs(60), "stuck");
            if audio.pull(&mut buffer) == 0 {
                std::thread::sleep(Duration::from_millis(1));
            }
        }
    };
    pull(&mut audio, 48_000);
    let asked = handle.send(Control::Mood(Mood::Sad), Quantum::Bar).unwrap();
    // Until it lands: the reader runs far ahead of real time, so this is wall time.
    let started = Instant::now();
    let mut until = asked;
    while handle.transitions()[0].actual_frame.is_none() {
        assert!(
            started.elapsed() < Duration::from_secs(60),
            "it never landed"
        );
        until += 48_000;
        pull(&mut audio, until);
    }
    let t = handle.transitions().pop().unwrap();
    let actual = t.actual_frame.expect("it landed in the end");
    assert!(t.late, "{t:?}");
    assert!(actual > t.requested_frame, "{t:?}");
    assert_eq!(grid.bar_frame(grid.bar_at(actual)), actual);
    assert_eq!(handle.stats().late, 1);
    let mut sections = Vec::new();
    sections_placed(&handle, &mut sections);
    let cut = sections.iter().find(|s| s.0 == actual).unwrap();
    assert_eq!(cut.3, Mood::Sad);
}
