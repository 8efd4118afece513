//! `refrain dataset guard`: indexes a small dataset's leads into a file that reads back and
//! finds them; bad input is refused in words.

use super::train::{refrain, small_dataset};
use refrain_engine::dataset::{for_each_piece, read_manifest};
use refrain_engine::generate::sha256_hex;
use refrain_engine::guard::{DEFAULT_NGRAM, GUARD_FILE, MelodyIndex, lead_line};
use refrain_engine::music::Stem;

#[test]
fn guard_indexes_every_lead_and_the_file_finds_them() {
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("data");
    small_dataset(&data);
    let out = dir.path().join("assets").join(GUARD_FILE);
    let result = refrain(&[
        "dataset",
        "guard",
        "--data",
        data.to_str().unwrap(),
        "--out",
        out.to_str().unwrap(),
    ]);
    let stderr = String::from_utf8_lossy(&result.stderr);
    assert!(result.status.success(), "{stderr}");
    assert!(stderr.contains("8 lead melodies"), "{stderr}");

    let index = MelodyIndex::read(&out).unwrap();
    assert_eq!(index.n(), DEFAULT_NGRAM);
    assert_eq!(index.melodies(), 8);
    let (manifest, manifest_bytes) = read_manifest(&data).unwrap();
    assert_eq!(index.manifest_sha256(), sha256_hex(&manifest_bytes));
    let mut checked = 0;
    for_each_piece(&data, &manifest, |piece| {
        let lead = piece.notes(Stem::Lead);
        let intervals = lead_line(&lead).len().saturating_sub(1);
        if intervals >= DEFAULT_NGRAM {
            assert_eq!(index.longest_copy(&lead), intervals, "{}", piece.id);
            checked += 1;
        }
        Ok(())
    })
    .unwrap();
    assert!(checked > 0);
    assert_eq!(std::fs::read_dir(out.parent().unwrap()).unwrap().count(), 1);
}

#[test]
fn guard_refuses_a_zero_run_and_a_folder_that_is_not_a_dataset() {
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().join(GUARD_FILE);
    let folder = dir.path().to_str().unwrap();
    let out_arg = out.to_str().unwrap();
    for args in [
        vec![
            "dataset", "guard", "--data", folder, "--out", out_arg, "--ngram", "0",
        ],
        vec!["dataset", "guard", "--data", folder, "--out", out_arg],
    ] {
        let result = refrain(&args);
        assert!(!result.status.success());
        let stderr = String::from_utf8_lossy(&result.stderr);
        assert!(
            stderr.contains("ngram") || stderr.contains("manifest.json"),
            "{stderr}"
        );
        assert!(!stderr.contains("panicked"));
        assert!(!out.exists());
    }
}
