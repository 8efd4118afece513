//! `refrain evaluate dit`: songs written with the shipped weights, held to the held-out
//! pieces by default and to the training pieces when asked.

use crate::train::{refrain, small_dataset};
use std::path::Path;

#[test]
fn evaluate_dit_compares_with_the_pieces_of_the_reference_asked_for() {
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("data");
    small_dataset(&data);
    let assets = Path::new(env!("CARGO_MANIFEST_DIR")).join("../assets");
    let pieces = |reference: &str| {
        let json = dir.path().join(format!("{reference}.json"));
        let result = refrain(&[
            "evaluate",
            "dit",
            "--data",
            data.to_str().unwrap(),
            "--assets",
            assets.to_str().unwrap(),
            "--songs",
            "8",
            "--diversity-seeds",
            "0",
            "--reference",
            reference,
            "--json",
            json.to_str().unwrap(),
        ]);
        let stderr = String::from_utf8_lossy(&result.stderr);
        assert!(result.status.success(), "{stderr}");
        let stdout = String::from_utf8_lossy(&result.stdout);
        assert!(stdout.contains(&format!("{reference} pieces")), "{stdout}");
        let report: serde_json::Value =
            serde_json::from_str(&std::fs::read_to_string(&json).unwrap()).unwrap();
        assert_eq!(report["reference"], reference);
        assert_eq!(report["songs"], 8);
        report["styles"]
            .as_array()
            .unwrap()
            .iter()
            .map(|style| style["real_pieces"].as_u64().unwrap())
            .sum::<u64>()
    };
    // small_dataset holds out two of its eight pieces.
    assert_eq!(pieces("held-out"), 2);
    assert_eq!(pieces("training"), 6);

    let refused = refrain(&["evaluate", "dit", "--data", "x", "--reference", "test"]);
    assert!(!refused.status.success());
    let stderr = String::from_utf8_lossy(&refused.stderr);
    assert!(stderr.contains("--reference"), "{stderr}");
}
