//! `refrain inspect`: the readable account of a trace, the piano roll with the taken-back
//! segments tinted, and clear failures on a bad trace or a missing folder.

use refrain_engine::midi::write_midi;
use refrain_engine::music::{
    ChordTrack, DrumClass, Instrument, Key, Meter, Mode, Note, Section, SectionKind, Song, Stem,
    StemTrack, Style,
};
use std::path::Path;
use std::process::{Command, Output};

fn refrain(args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_refrain"))
        .args(args)
        .output()
        .expect("the refrain binary runs")
}

const RETRACT_REASON: &str = "best of 2 finished candidates scored 0.31, below the threshold 0.50";
const BACKTRACK_REASON: &str = "segment 1 failed twice; taking back segment 0 to write it anew";

/// Four bars of 4/4 with drums, bass and lead, notes in every bar.
fn tiny_song() -> Song {
    let note = |start, duration, pitch, velocity| Note {
        start,
        duration,
        pitch,
        velocity,
    };
    let mut drums = StemTrack::new(Stem::Drums, Instrument::DrumKit);
    let mut bass = StemTrack::new(Stem::Bass, Instrument::FingerBass);
    let mut lead = StemTrack::new(Stem::Lead, Instrument::SawLead);
    for bar in 0..4 {
        let b = bar * 16;
        drums.notes.push(note(b, 1, DrumClass::Kick.index(), 110));
        drums
            .notes
            .push(note(b + 8, 1, DrumClass::Snare.index(), 100));
        bass.notes.push(note(b, 8, -24, 90));
        lead.notes.push(note(b + 2, 2, 4 + bar as i32, 100));
    }
    Song {
        style: Style::Lofi,
        tempo_bpm: 84.0,
        meter: Meter::FourFour,
        key: Key::new(9, Mode::Minor),
        bars: 4,
        sections: vec![Section {
            kind: SectionKind::Verse,
            start_bar: 0,
            bars: 4,
            energy: 0.5,
        }],
        chords: ChordTrack::default(),
        stems: vec![drums, bass, lead],
    }
}

/// Segment 0 (bars 0-2) accepted; segment 1 (bars 2-4) pruned at a checkpoint, rejected,
/// retracted, then backtracked; segment 0 and 1 written again and accepted.
fn trace_lines() -> Vec<String> {
    let line = |segment: u32, attempt: u32, rest: &str| {
        let bars = [segment * 2, segment * 2 + 2];
        format!(
            "{{\"segment\":{segment},\"section\":\"verse\",\"bars\":[{},{}],\"attempt\":{attempt},{rest}}}",
            bars[0], bars[1]
        )
    };
    vec![
        // The older format of `refrain generate`: no step, particle or aspects.
        line(0, 0, r#""decision":"accept","reason":"first sample kept""#),
        line(
            1,
            0,
            r#""step":3,"particle":1,"decision":"prune","overall":0.21,"aspects":{"rhythm":0.1,"harmony":0.6},"reason":"low""#,
        ),
        line(
            1,
            0,
            r#""step":3,"particle":0,"decision":"resample","overall":0.35,"aspects":{"rhythm":0.5,"harmony":0.3},"reason":"kept""#,
        ),
        line(
            1,
            0,
            r#""particle":0,"decision":"reject","overall":0.31,"reason":"below""#,
        ),
        line(
            1,
            0,
            &format!(r#""decision":"retract","reason":"{RETRACT_REASON}""#),
        ),
        line(
            1,
            1,
            &format!(r#""decision":"backtrack","reason":"{BACKTRACK_REASON}""#),
        ),
        line(
            0,
            1,
            r#""particle":2,"decision":"accept","overall":0.8,"reason":"best""#,
        ),
        line(
            1,
            2,
            r#""particle":0,"decision":"accept","overall":0.7,"reason":"best""#,
        ),
    ]
}

fn write_output_folder(dir: &Path, trace: &[String]) {
    std::fs::write(dir.join("song.mid"), write_midi(&tiny_song())).unwrap();
    std::fs::write(dir.join("trace.jsonl"), trace.join("\n") + "\n").unwrap();
}

fn read_png(path: &Path) -> (u32, u32, Vec<u8>) {
    let file = std::io::BufReader::new(std::fs::File::open(path).expect("the PNG was written"));
    let mut reader = png::Decoder::new(file)
        .read_info()
        .expect("a decodable PNG");
    let mut rgb = vec![0; reader.output_buffer_size().unwrap()];
    let info = reader.next_frame(&mut rgb).unwrap();
    assert_eq!(info.color_type, png::ColorType::Rgb);
    assert_eq!(info.bit_depth, png::BitDepth::Eight);
    rgb.truncate(info.buffer_size());
    (info.width, info.height, rgb)
}

fn is_red_tinted(pixel: &[u8]) -> bool {
    let (r, g, b) = (
        i32::from(pixel[0]),
        i32::from(pixel[1]),
        i32::from(pixel[2]),
    );
    r > g + 40 && r > b + 40
}

#[test]
fn inspect_tells_the_trace_and_tints_the_retracted_bars() {
    let dir = tempfile::tempdir().unwrap();
    write_output_folder(dir.path(), &trace_lines());
    let result = refrain(&["inspect", dir.path().to_str().unwrap()]);
    let stdout = String::from_utf8_lossy(&result.stdout);
    let stderr = String::from_utf8_lossy(&result.stderr);
    assert!(result.status.success(), "{stderr}");
    assert!(stdout.contains("song: 4 bars of 4/4"), "{stdout}");
    assert!(
        stdout.contains("8 events over 2 segments: 3 accept, 1 reject, 1 prune, 1 resample, 1 retract, 1 backtrack"),
        "{stdout}"
    );
    assert!(
        stdout.contains(&format!("retracted: {RETRACT_REASON}")),
        "{stdout}"
    );
    assert!(
        stdout.contains(&format!("backtracked: {BACKTRACK_REASON}")),
        "{stdout}"
    );
    assert!(
        stdout.contains("step 3: pruned particle 1 (overall 0.21; weakest rhythm): low"),
        "{stdout}"
    );
    assert!(stdout.contains("segment 0 again"), "{stdout}");

    let (width, height, rgb) = read_png(&dir.path().join("pianoroll.png"));
    // 4 bars of 16 steps at 3 pixels a step.
    assert_eq!(width, 4 * 16 * 3);
    let pixel = |x: u32, y: u32| {
        let i = (y * width + x) as usize * 3;
        &rgb[i..i + 3]
    };
    // Segment 1 (bars 2-4, pixels 96-192) was retracted; segment 0 (bars 0-2) only accepted.
    let column_reds = |x: u32| (0..height).filter(|&y| is_red_tinted(pixel(x, y))).count();
    let tinted = column_reds(150);
    assert!(
        tinted as u32 > height / 2,
        "{tinted} of {height} red at x 150"
    );
    assert_eq!(column_reds(40), 0);
}

#[test]
fn png_chooses_the_file_and_full_prints_every_line() {
    let dir = tempfile::tempdir().unwrap();
    let lines = trace_lines();
    write_output_folder(dir.path(), &lines);
    let picture = dir.path().join("elsewhere.png");
    let result = refrain(&[
        "inspect",
        dir.path().to_str().unwrap(),
        "--full",
        "--png",
        picture.to_str().unwrap(),
    ]);
    assert!(
        result.status.success(),
        "{}",
        String::from_utf8_lossy(&result.stderr)
    );
    let stdout = String::from_utf8_lossy(&result.stdout);
    for line in &lines {
        assert!(
            stdout.contains(line.as_str()),
            "{line} missing from {stdout}"
        );
    }
    assert!(picture.is_file());
    assert!(!dir.path().join("pianoroll.png").exists());
}

#[test]
fn a_bad_trace_line_fails_naming_its_number() {
    let dir = tempfile::tempdir().unwrap();
    let mut lines = trace_lines();
    lines[2] = r#"{"segment": 1, "decision": "ponder"}"#.to_string();
    write_output_folder(dir.path(), &lines);
    let result = refrain(&["inspect", dir.path().to_str().unwrap()]);
    assert!(!result.status.success());
    let stderr = String::from_utf8_lossy(&result.stderr);
    assert!(stderr.contains("line 3"), "{stderr}");
    assert!(stderr.contains("trace.jsonl"), "{stderr}");
    assert!(!stderr.contains("panicked"), "{stderr}");
    assert!(!dir.path().join("pianoroll.png").exists());
}

#[test]
fn without_song_mid_the_trace_is_still_told() {
    let dir = tempfile::tempdir().unwrap();
    write_output_folder(dir.path(), &trace_lines());
    std::fs::remove_file(dir.path().join("song.mid")).unwrap();
    let result = refrain(&["inspect", dir.path().to_str().unwrap()]);
    assert!(result.status.success());
    let stdout = String::from_utf8_lossy(&result.stdout);
    let stderr = String::from_utf8_lossy(&result.stderr);
    assert!(stdout.contains(RETRACT_REASON), "{stdout}");
    assert!(stderr.contains("no song.mid"), "{stderr}");
    assert!(!dir.path().join("pianoroll.png").exists());
}

#[test]
fn a_missing_folder_or_trace_is_told_in_words() {
    let dir = tempfile::tempdir().unwrap();
    let missing = dir.path().join("nowhere");
    let result = refrain(&["inspect", missing.to_str().unwrap()]);
    assert!(!result.status.success());
    let stderr = String::from_utf8_lossy(&result.stderr);
    assert!(stderr.contains("there is no folder"), "{stderr}");

    let result = refrain(&["inspect", dir.path().to_str().unwrap()]);
    assert!(!result.status.success());
    let stderr = String::from_utf8_lossy(&result.stderr);
    assert!(stderr.contains("has no trace.jsonl"), "{stderr}");
}
