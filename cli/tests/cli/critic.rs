//! The critic from the command line: `train critic` on a small dataset, `score` on a MIDI
//! file, and `generate` thinking with the shipped critic (trace, manifest, determinism).

use crate::train::{refrain, small_dataset};
use refrain_engine::reasoning::{Decision, TraceEvent};

fn trace(dir: &std::path::Path) -> Vec<TraceEvent> {
    std::fs::read_to_string(dir.join("trace.jsonl"))
        .unwrap()
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect()
}

fn ok(output: &std::process::Output) {
    assert!(
        output.status.success(),
        "{}",
        String::from_utf8_lossy(&output.stderr)
    );
}

#[test]
fn a_short_critic_run_writes_calibrated_weights_that_score_a_song() {
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("data");
    small_dataset(&data);
    let run = dir.path().join("run");
    let args = |steps: &str| {
        vec![
            "train".to_string(),
            "critic".into(),
            "--data".into(),
            data.display().to_string(),
            "--out".into(),
            run.display().to_string(),
            "--steps".into(),
            steps.into(),
            "--eval-every".into(),
            "2".into(),
            "--eval-windows".into(),
            "6".into(),
            "--weak-samples".into(),
            "6".into(),
            "--batch".into(),
            "4".into(),
            "--d-model".into(),
            "16".into(),
            "--layers".into(),
            "1".into(),
            "--heads".into(),
            "2".into(),
        ]
    };
    let first: Vec<String> = args("2");
    ok(&refrain(
        &first.iter().map(String::as_str).collect::<Vec<_>>(),
    ));
    // A second run into the same folder must say --resume.
    let again = refrain(&first.iter().map(String::as_str).collect::<Vec<_>>());
    assert!(!again.status.success());
    assert!(String::from_utf8_lossy(&again.stderr).contains("--resume"));
    let mut resumed: Vec<String> = args("4");
    resumed.push("--resume".into());
    let output = refrain(&resumed.iter().map(String::as_str).collect::<Vec<_>>());
    ok(&output);
    let said = String::from_utf8_lossy(&output.stderr);
    assert!(said.contains("ROC-AUC against off-key"), "{said}");
    assert!(said.contains("weak-sample"), "{said}");
    let log = std::fs::read_to_string(run.join("loss.csv")).unwrap();
    assert_eq!(log.lines().count(), 3, "{log}");
    let report: serde_json::Value =
        serde_json::from_slice(&std::fs::read(run.join("critic-evaluation.json")).unwrap())
            .unwrap();
    assert!(report["ece_calibrated"].as_f64().unwrap() >= 0.0);

    // The run's weights judge a MIDI file on their own.
    let song = dir.path().join("song");
    ok(&refrain(&[
        "generate",
        "--seconds",
        "12",
        "--think",
        "none",
        "--out",
        song.to_str().unwrap(),
    ]));
    let assets = dir.path().join("assets");
    std::fs::create_dir(&assets).unwrap();
    std::fs::copy(
        run.join("critic.safetensors"),
        assets.join("critic.safetensors"),
    )
    .unwrap();
    let output = refrain(&[
        "score",
        song.join("song.mid").to_str().unwrap(),
        "--json",
        "--assets",
        assets.to_str().unwrap(),
    ]);
    ok(&output);
    let score: serde_json::Value = serde_json::from_slice(&output.stdout).unwrap();
    let overall = score["overall"].as_f64().unwrap();
    assert!((0.0..=1.0).contains(&overall));
    assert!(!score["segments"].as_array().unwrap().is_empty());
    assert_eq!(score["aspects"].as_object().unwrap().len(), 5);
    let missing = refrain(&["score", "no-such.mid"]);
    assert!(!missing.status.success());
    assert!(String::from_utf8_lossy(&missing.stderr).contains("no-such.mid"));
}

#[test]
fn thinking_leaves_a_trace_of_judged_decisions_and_the_same_bytes_twice() {
    let dir = tempfile::tempdir().unwrap();
    let write = |name: &str, extra: &[&str]| {
        let out = dir.path().join(name);
        let mut args = vec![
            "generate",
            "--style",
            "jazz",
            "--seconds",
            "20",
            "--seed",
            "5",
        ];
        args.extend_from_slice(extra);
        args.extend(["--out", out.to_str().unwrap()]);
        ok(&refrain(&args));
        out
    };
    let a = write("a", &["--think", "balanced"]);
    let b = write("b", &["--think", "balanced"]);
    for file in ["song.mid", "trace.jsonl", "mix.wav"] {
        assert_eq!(
            std::fs::read(a.join(file)).unwrap(),
            std::fs::read(b.join(file)).unwrap(),
            "{file} differs between two runs of one request"
        );
    }
    let events = trace(&a);
    let has = |d: Decision| events.iter().any(|e| e.decision == d);
    assert!(has(Decision::Prune) && has(Decision::Resample) && has(Decision::Accept));
    assert!(
        events
            .iter()
            .filter(|e| e.step.is_some())
            .all(|e| e.overall.is_some())
    );
    let manifest = std::fs::read_to_string(a.join("manifest.json")).unwrap();
    assert!(manifest.contains("critic.safetensors"), "{manifest}");

    let plain = write("plain", &["--think", "none", "--candidates", "3"]);
    let events = trace(&plain);
    assert!(events.iter().all(|e| e.overall.is_none()));
    assert!(
        events
            .iter()
            .filter(|e| e.decision == Decision::Accept)
            .all(|e| e.reason.contains("at random"))
    );
    let manifest = std::fs::read_to_string(plain.join("manifest.json")).unwrap();
    assert!(!manifest.contains("critic.safetensors"));
    let bad = refrain(&[
        "generate",
        "--think",
        "hard",
        "--out",
        dir.path().join("x").to_str().unwrap(),
    ]);
    assert!(!bad.status.success());
    assert!(String::from_utf8_lossy(&bad.stderr).contains("none, fast, balanced or deep"));
}
