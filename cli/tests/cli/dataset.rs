//! `refrain dataset`: clear failures on bad input (the full build needs the registry and is
//! exercised by the engine's own tests on fixtures).

use std::process::Command;

#[test]
fn stats_on_a_folder_that_is_not_a_dataset_fails_in_words() {
    let dir = tempfile::tempdir().unwrap();
    let result = Command::new(env!("CARGO_BIN_EXE_refrain"))
        .args(["dataset", "stats", dir.path().to_str().unwrap(), "--json"])
        .output()
        .unwrap();
    assert!(!result.status.success());
    let stderr = String::from_utf8_lossy(&result.stderr);
    assert!(stderr.contains("manifest.json"), "{stderr}");
    assert!(!stderr.contains("panicked"));
}

#[test]
fn build_with_a_wrong_wheel_is_refused_before_any_work() {
    let dir = tempfile::tempdir().unwrap();
    let fake = dir.path().join("music21-10.5.1-py3-none-any.whl");
    std::fs::write(&fake, b"not a wheel").unwrap();
    let out = dir.path().join("data");
    let result = Command::new(env!("CARGO_BIN_EXE_refrain"))
        .args([
            "dataset",
            "build",
            "--wheel",
            fake.to_str().unwrap(),
            "--out",
            out.to_str().unwrap(),
        ])
        .output()
        .unwrap();
    assert!(!result.status.success());
    let stderr = String::from_utf8_lossy(&result.stderr);
    assert!(
        stderr.contains("sha256") || stderr.contains("hash"),
        "{stderr}"
    );
    assert!(!out.exists());
}
