//! C ABI tests: the committed header matches the code, the entry points refuse bad input with
//! codes and words, and the C example builds against the static library, runs, and writes a
//! minute of audio within the loudness and peak bounds.

use refrain_capi::*;
use std::ffi::{CStr, CString};
use std::path::PathBuf;
use std::process::Command;

fn crate_dir() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

/// The committed header against what cbindgen makes of the code now. cbindgen is a tool
/// (`cargo install cbindgen --version 0.29.4`), not a dependency, so the build stays small; where
/// it is not installed the test says so and passes. `REFRAIN_BLESS=1` rewrites the header.
#[test]
fn the_committed_header_is_current() {
    let dir = crate_dir();
    let cbindgen = std::env::var_os("CBINDGEN").unwrap_or_else(|| "cbindgen".into());
    let generated = dir.join("target-refrain.h");
    let run = Command::new(&cbindgen)
        .current_dir(&dir)
        .args([
            "--config",
            "cbindgen.toml",
            "--crate",
            "refrain-capi",
            "--output",
        ])
        .arg(&generated)
        .output();
    let run = match run {
        Ok(run) => run,
        Err(e) => {
            eprintln!("cbindgen not run ({e}); header not checked");
            return;
        }
    };
    assert!(
        run.status.success(),
        "cbindgen failed: {}",
        String::from_utf8_lossy(&run.stderr)
    );
    let fresh = std::fs::read(&generated).unwrap();
    let _ = std::fs::remove_file(&generated);
    let committed = std::fs::read(dir.join("include/refrain.h")).unwrap_or_default();
    if fresh != committed {
        if std::env::var_os("REFRAIN_BLESS").is_some() {
            std::fs::write(dir.join("include/refrain.h"), &fresh).unwrap();
        } else {
            panic!(
                "capi/include/refrain.h is out of date; run REFRAIN_BLESS=1 cargo test -p \
                 refrain-capi the_committed_header_is_current and commit it"
            );
        }
    }
}

fn last_error() -> String {
    // SAFETY: refrain_last_error returns a NUL-terminated string valid until the next call.
    unsafe { CStr::from_ptr(refrain_last_error()) }
        .to_string_lossy()
        .into_owned()
}

#[test]
fn bad_input_gives_codes_and_words_not_crashes() {
    let mut session: *mut RefrainSession = std::ptr::null_mut();
    // SAFETY: null arguments are what is being tested; the functions check them.
    unsafe {
        assert_eq!(
            refrain_session_create(std::ptr::null(), &mut session),
            RefrainStatus::NullArgument
        );
        let bad = CString::new(r#"{"bpm": 9000, "composer": "arranger"}"#).unwrap();
        assert_eq!(
            refrain_session_create(bad.as_ptr(), &mut session),
            RefrainStatus::BadRequest
        );
        assert!(last_error().contains("tempo"), "{}", last_error());
        let unknown = CString::new(r#"{"colour": "blue"}"#).unwrap();
        assert_eq!(
            refrain_session_create(unknown.as_ptr(), &mut session),
            RefrainStatus::BadRequest
        );
        assert!(last_error().contains("colour"), "{}", last_error());
        assert!(session.is_null());
        let mut frames = [0.0f32; 8];
        assert_eq!(
            refrain_session_render(
                std::ptr::null_mut(),
                frames.as_mut_ptr(),
                4,
                0,
                std::ptr::null_mut()
            ),
            RefrainStatus::NullArgument
        );

        let good = CString::new(r#"{"style": "lofi", "seed": 3, "composer": "arranger"}"#).unwrap();
        assert_eq!(
            refrain_session_create(good.as_ptr(), &mut session),
            RefrainStatus::Ok
        );
        assert!(!session.is_null());
        assert_eq!(
            refrain_session_set_intensity(session, 7.0, REFRAIN_QUANTUM_BAR, std::ptr::null_mut()),
            RefrainStatus::BadRequest
        );
        assert_eq!(
            refrain_session_queue(session, 99, REFRAIN_QUANTUM_BAR, std::ptr::null_mut()),
            RefrainStatus::BadRequest
        );
        assert_eq!(
            refrain_session_queue(session, REFRAIN_CONTROL_STINGER, 42, std::ptr::null_mut()),
            RefrainStatus::BadRequest
        );
        let mood = CString::new("dark").unwrap();
        let mut at = 0u64;
        assert_eq!(
            refrain_session_set_mood(session, mood.as_ptr(), 0, REFRAIN_QUANTUM_BAR, &mut at),
            RefrainStatus::Ok
        );
        assert!(at > 0);
        assert_eq!(
            refrain_session_render(session, frames.as_mut_ptr(), 4, 5, std::ptr::null_mut()),
            RefrainStatus::BadRequest
        );
        let mut written = 0usize;
        assert_eq!(
            refrain_session_render(
                session,
                frames.as_mut_ptr(),
                4,
                REFRAIN_RENDER_WAIT,
                &mut written
            ),
            RefrainStatus::Ok
        );
        assert_eq!(written, 4);
        let mut position = RefrainPosition::default();
        assert_eq!(
            refrain_session_position(session, &mut position),
            RefrainStatus::Ok
        );
        assert_eq!(position.frame, 4);
        assert_eq!(position.sample_rate, 48_000);
        let mut small = [0 as std::ffi::c_char; 4];
        let mut needed = 0usize;
        assert_eq!(
            refrain_session_stats_json(session, small.as_mut_ptr(), small.len(), &mut needed),
            RefrainStatus::BadRequest
        );
        assert!(needed > 4);
        refrain_session_free(session);
        refrain_session_free(std::ptr::null_mut());
    }
}

/// The static library of this build: cargo leaves it in deps/ beside the test binary (and
/// copies it one folder up on `cargo build`).
fn static_library() -> PathBuf {
    let exe = std::env::current_exe().unwrap();
    let deps = exe.parent().unwrap();
    [deps, deps.parent().unwrap_or(deps)]
        .iter()
        .map(|d| d.join("librefrain_capi.a"))
        .find(|p| p.is_file())
        .unwrap_or_else(|| deps.join("librefrain_capi.a"))
}

#[test]
fn the_c_example_builds_runs_and_meets_the_audio_bounds() {
    let lib = static_library();
    assert!(lib.is_file(), "no static library at {}", lib.display());
    let root = crate_dir().join("..");
    let dir = tempfile::tempdir().unwrap();
    let exe = dir.path().join("adaptive_session");
    let gcc = Command::new("gcc")
        .arg(root.join("examples/c/adaptive_session.c"))
        .arg("-I")
        .arg(crate_dir().join("include"))
        .arg(&lib)
        .args(["-lpthread", "-ldl", "-lm", "-o"])
        .arg(&exe)
        .output()
        .expect("gcc runs (install a C compiler)");
    assert!(
        gcc.status.success(),
        "gcc failed:\n{}",
        String::from_utf8_lossy(&gcc.stderr)
    );
    let wav = dir.path().join("adaptive.wav");
    let run = Command::new(&exe)
        .arg(&wav)
        .output()
        .expect("the example runs");
    assert!(
        run.status.success(),
        "the example failed:\n{}\n{}",
        String::from_utf8_lossy(&run.stdout),
        String::from_utf8_lossy(&run.stderr)
    );
    let stdout = String::from_utf8_lossy(&run.stdout);
    assert!(stdout.contains("intensity"), "{stdout}");
    let mut reader = hound::WavReader::open(&wav).unwrap();
    let spec = reader.spec();
    assert_eq!(spec.channels, 2);
    let samples: Vec<f32> = reader.samples::<f32>().map(Result::unwrap).collect();
    assert_eq!(samples.len(), 60 * spec.sample_rate as usize * 2);
    assert!(samples.iter().all(|s| s.abs() < 1.0), "clipped");
    let buffer = refrain_engine::render::StereoBuffer {
        sample_rate: spec.sample_rate,
        samples,
    };
    let (loudness, peak) = refrain_engine::render::master::measure(&buffer).unwrap();
    let loudness = loudness.unwrap();
    assert!((loudness + 14.0).abs() <= 0.5, "{loudness} LUFS\n{stdout}");
    assert!(peak.unwrap() <= -1.0, "{peak:?} dBTP");
    let stats: serde_json::Value = serde_json::from_str(stdout.lines().last().unwrap()).unwrap();
    assert_eq!(stats["underruns"], 0);
    for t in stats["transitions"].as_array().unwrap() {
        assert!(t["actual_frame"].as_u64().unwrap() >= t["requested_frame"].as_u64().unwrap());
    }
}
