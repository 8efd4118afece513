//! `refrain generate`: the output folder, exact durations, the requested tempo and key,
//! determinism, and clean failures.

use refrain_engine::midi::read_midi;
use refrain_engine::music::{Key, Stem};
use refrain_scorer::song_features;
use std::path::Path;
use std::process::{Command, Output};

fn refrain(args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_refrain"))
        .args(args)
        .output()
        .expect("the refrain binary runs")
}

fn wav_frames(path: &Path) -> (u32, u16, u32) {
    let reader = hound::WavReader::open(path).expect("a readable WAV");
    let spec = reader.spec();
    (reader.duration(), spec.bits_per_sample, spec.sample_rate)
}

const OUTPUT_FILES: [&str; 11] = [
    "mix.wav",
    "song.mid",
    "plan.json",
    "trace.jsonl",
    "manifest.json",
    "stems/drums.wav",
    "stems/bass.wav",
    "stems/chords.wav",
    "stems/lead.wav",
    "stems/texture.wav",
    "manifest.json",
];

#[test]
fn the_issue_request_gives_the_promised_song() {
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().join("o");
    let o = out.to_str().unwrap();
    let result = refrain(&[
        "generate",
        "--style",
        "lofi",
        "--bpm",
        "100",
        "--key",
        "D major",
        "--seconds",
        "30",
        "--seed",
        "1",
        "--out",
        o,
    ]);
    assert!(
        result.status.success(),
        "{}",
        String::from_utf8_lossy(&result.stderr)
    );
    for file in OUTPUT_FILES {
        assert!(out.join(file).is_file(), "{file} missing");
    }
    assert_eq!(wav_frames(&out.join("mix.wav")), (30 * 48_000, 24, 48_000));
    assert_eq!(wav_frames(&out.join("stems/bass.wav")).0, 30 * 48_000);

    let song = read_midi(&std::fs::read(out.join("song.mid")).unwrap()).unwrap();
    assert_eq!(song.tempo_bpm, 100.0);
    assert_eq!(song.key, Key::parse("D major").unwrap());
    let playing = |stem: Stem| song.stem(stem).is_some_and(|t| !t.notes.is_empty());
    assert!(playing(Stem::Drums));
    let pitched = [Stem::Bass, Stem::Chords, Stem::Lead, Stem::Texture]
        .into_iter()
        .filter(|&s| playing(s))
        .count();
    assert!(pitched >= 3, "only {pitched} pitched stems play");
    let features = song_features(&song);
    // The DiT writes the notes: the 200-song figure (docs/MODEL_CARD.md) is the real bar;
    // one song must still sit clearly in its key.
    assert!(
        features.in_scale_ratio >= 0.8,
        "{}",
        features.in_scale_ratio
    );

    let manifest: serde_json::Value =
        serde_json::from_slice(&std::fs::read(out.join("manifest.json")).unwrap()).unwrap();
    assert_eq!(manifest["frames"], 1_440_000);
    assert_eq!(manifest["sample_rate"], 48_000);
    assert_eq!(manifest["seconds"], 30.0);
    assert!(manifest["loudness_lufs"].is_number());
    assert!(manifest["true_peak_dbtp"].as_f64().unwrap() <= -1.0 + 1e-9);
    assert!(manifest["licences"].as_array().unwrap().len() >= 6);
    let models = manifest["models"].as_array().unwrap();
    assert_eq!(
        models.len(),
        4,
        "the autoencoder, the DiT, the critic and the guard"
    );
    for model in models {
        let file = model["file"].as_str().unwrap();
        let bytes = std::fs::read(
            Path::new(env!("CARGO_MANIFEST_DIR"))
                .join("../assets")
                .join(file),
        )
        .unwrap();
        assert_eq!(
            model["sha256"],
            refrain_engine::generate::sha256_hex(&bytes)
        );
    }
    let plan: serde_json::Value =
        serde_json::from_slice(&std::fs::read(out.join("plan.json")).unwrap()).unwrap();
    assert_eq!(plan["bars"], 12);
    assert_eq!(plan["chords_per_bar"].as_array().unwrap().len(), 12);
}

#[test]
fn the_same_request_gives_the_same_bytes_and_another_seed_does_not() {
    let dir = tempfile::tempdir().unwrap();
    let run = |name: &str, seed: &str| {
        let out = dir.path().join(name);
        let result = refrain(&[
            "generate",
            "synthwave 6/8 in F# minor",
            "--seconds",
            "12",
            "--seed",
            seed,
            "--out",
            out.to_str().unwrap(),
        ]);
        assert!(
            result.status.success(),
            "{}",
            String::from_utf8_lossy(&result.stderr)
        );
        out
    };
    let (a, b, c) = (run("a", "5"), run("b", "5"), run("c", "6"));
    for file in [
        "mix.wav",
        "song.mid",
        "plan.json",
        "manifest.json",
        "stems/lead.wav",
    ] {
        assert_eq!(
            std::fs::read(a.join(file)).unwrap(),
            std::fs::read(b.join(file)).unwrap(),
            "{file}"
        );
    }
    assert_ne!(
        std::fs::read(a.join("song.mid")).unwrap(),
        std::fs::read(c.join("song.mid")).unwrap()
    );
}

#[test]
fn chinese_prompts_and_unused_words_reach_the_plan() {
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().join("zh");
    let result = refrain(&[
        "generate",
        "低保真 雨夜 80拍 20秒 神秘",
        "--out",
        out.to_str().unwrap(),
    ]);
    assert!(
        result.status.success(),
        "{}",
        String::from_utf8_lossy(&result.stderr)
    );
    let plan: serde_json::Value =
        serde_json::from_slice(&std::fs::read(out.join("plan.json")).unwrap()).unwrap();
    assert_eq!(plan["style"], "lofi");
    assert_eq!(plan["mood"], "calm");
    assert_eq!(plan["tempo_bpm"], 80.0);
    assert_eq!(plan["seconds"], 20.0);
    assert_eq!(plan["prompt_unused"], serde_json::json!(["神秘"]));
    assert_eq!(wav_frames(&out.join("mix.wav")).0, 20 * 48_000);
}

#[test]
fn stems_subset_and_sample_rate_are_honoured() {
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().join("s");
    let result = refrain(&[
        "generate",
        "--style",
        "jazz",
        "--seconds",
        "8",
        "--stems",
        "bass,lead",
        "--sample-rate",
        "44100",
        "--out",
        out.to_str().unwrap(),
    ]);
    assert!(
        result.status.success(),
        "{}",
        String::from_utf8_lossy(&result.stderr)
    );
    assert!(out.join("stems/bass.wav").is_file());
    assert!(out.join("stems/lead.wav").is_file());
    assert!(!out.join("stems/drums.wav").exists());
    assert_eq!(wav_frames(&out.join("mix.wav")), (8 * 44_100, 24, 44_100));
}

#[test]
fn bad_requests_fail_in_words_and_leave_no_folder() {
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().join("bad");
    let o = out.to_str().unwrap();
    for args in [
        vec!["generate", "--key", "H major", "--out", o],
        vec!["generate", "--bpm", "1000", "--out", o],
        vec!["generate", "--seconds", "0.1", "--out", o],
        vec!["generate", "--meter", "5/4", "--out", o],
        vec![
            "generate",
            "--loop",
            "--bpm",
            "100",
            "--seconds",
            "30",
            "--out",
            o,
        ],
    ] {
        let result = refrain(&args);
        assert!(!result.status.success(), "{args:?} succeeded");
        let stderr = String::from_utf8_lossy(&result.stderr);
        assert!(!stderr.contains("panicked"), "{stderr}");
        assert!(stderr.len() > 20, "{stderr}");
        assert!(!out.exists(), "{args:?} left a folder behind");
    }
    let leftovers: Vec<_> = std::fs::read_dir(dir.path()).unwrap().collect();
    assert!(leftovers.is_empty(), "staging folders left behind");
}

#[test]
fn an_existing_folder_is_kept_unless_forced() {
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().join("keep");
    std::fs::create_dir(&out).unwrap();
    std::fs::write(out.join("mine.txt"), "precious").unwrap();
    let o = out.to_str().unwrap();
    let result = refrain(&["generate", "--seconds", "5", "--out", o]);
    assert!(!result.status.success());
    assert!(String::from_utf8_lossy(&result.stderr).contains("--force"));
    assert!(out.join("mine.txt").exists());
    let result = refrain(&["generate", "--seconds", "5", "--out", o, "--force"]);
    assert!(
        result.status.success(),
        "{}",
        String::from_utf8_lossy(&result.stderr)
    );
    assert!(!out.join("mine.txt").exists());
    assert!(out.join("mix.wav").exists());
}

#[test]
fn render_turns_the_generated_midi_back_into_audio() {
    let dir = tempfile::tempdir().unwrap();
    let song = dir.path().join("song");
    let result = refrain(&[
        "generate",
        "--style",
        "rock",
        "--bars",
        "4",
        "--bpm",
        "120",
        "--out",
        song.to_str().unwrap(),
    ]);
    assert!(
        result.status.success(),
        "{}",
        String::from_utf8_lossy(&result.stderr)
    );
    let rendered = dir.path().join("rendered");
    let result = refrain(&[
        "render",
        song.join("song.mid").to_str().unwrap(),
        "--out",
        rendered.to_str().unwrap(),
    ]);
    assert!(
        result.status.success(),
        "{}",
        String::from_utf8_lossy(&result.stderr)
    );
    // Four bars of 4/4 at 120 bpm are 8 s, plus the 2 s ring-out.
    assert_eq!(
        wav_frames(&rendered.join("mix.wav")),
        (10 * 48_000, 24, 48_000)
    );
    assert!(rendered.join("stems/drums.wav").is_file());
    // --mix-only: the same mix, byte for byte, and no stems/.
    let mix_only = dir.path().join("mix-only");
    let result = refrain(&[
        "render",
        song.join("song.mid").to_str().unwrap(),
        "--mix-only",
        "--out",
        mix_only.to_str().unwrap(),
    ]);
    assert!(
        result.status.success(),
        "{}",
        String::from_utf8_lossy(&result.stderr)
    );
    assert_eq!(
        std::fs::read(mix_only.join("mix.wav")).unwrap(),
        std::fs::read(rendered.join("mix.wav")).unwrap()
    );
    assert!(!mix_only.join("stems").exists());
    assert!(mix_only.join("manifest.json").is_file());
    // A loop of the same bars: exactly 8 s at 44.1 kHz, 16-bit, with its loop points.
    let looped = dir.path().join("looped");
    let result = refrain(&[
        "render",
        song.join("song.mid").to_str().unwrap(),
        "--loop",
        "--bit-depth",
        "16",
        "--sample-rate",
        "44100",
        "--out",
        looped.to_str().unwrap(),
    ]);
    assert!(
        result.status.success(),
        "{}",
        String::from_utf8_lossy(&result.stderr)
    );
    assert_eq!(
        wav_frames(&looped.join("mix.wav")),
        (8 * 44_100, 16, 44_100)
    );
    let bytes = std::fs::read(looped.join("stems/bass.wav")).unwrap();
    assert_eq!(
        refrain_engine::render::read_loop(&bytes),
        Some(refrain_engine::render::WavLoop {
            start: 0,
            end: 8 * 44_100 - 1
        })
    );
    assert!(
        bytes.windows(7).any(|w| w == b"refrain"),
        "INFO names the software"
    );
    let manifest: serde_json::Value =
        serde_json::from_slice(&std::fs::read(looped.join("manifest.json")).unwrap()).unwrap();
    assert_eq!(manifest["looped"], true);
    assert_eq!(manifest["licences"].as_array().unwrap().len(), 5);
    let bad = refrain(&[
        "render",
        song.join("song.mid").to_str().unwrap(),
        "--bit-depth",
        "12",
        "--out",
        dir.path().join("y").to_str().unwrap(),
    ]);
    assert!(!bad.status.success());
    assert!(String::from_utf8_lossy(&bad.stderr).contains("24 or 16"));
    let missing = refrain(&[
        "render",
        "no-such.mid",
        "--out",
        dir.path().join("x").to_str().unwrap(),
    ]);
    assert!(!missing.status.success());
    assert!(String::from_utf8_lossy(&missing.stderr).contains("no-such.mid"));
    assert!(!dir.path().join("x").exists());
}

#[test]
fn evaluate_audio_checks_songs_and_loops() {
    let dir = tempfile::tempdir().unwrap();
    let json = dir.path().join("audio.json");
    let result = refrain(&[
        "evaluate",
        "audio",
        "--songs",
        "2",
        "--loops",
        "1",
        "--json",
        json.to_str().unwrap(),
    ]);
    assert!(
        result.status.success(),
        "{}",
        String::from_utf8_lossy(&result.stderr)
    );
    let report: serde_json::Value = serde_json::from_slice(&std::fs::read(&json).unwrap()).unwrap();
    assert_eq!(report["songs"].as_array().unwrap().len(), 2);
    assert_eq!(report["loops"].as_array().unwrap().len(), 1);
    assert_eq!(report["songs_passed"], 2, "{report}");
    assert_eq!(report["clipped_samples"], 0);
}
