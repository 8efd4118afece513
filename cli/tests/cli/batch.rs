//! `refrain batch`: one folder per request, bad lines reported by number without stopping the
//! others, reruns that skip finished songs, and a stopped run that resumes to the same bytes.

use std::fs;
use std::path::Path;
use std::process::{Command, Output};

fn refrain(args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_refrain"))
        .args(args)
        .output()
        .expect("the refrain binary runs")
}

fn stderr(output: &Output) -> String {
    String::from_utf8_lossy(&output.stderr).into_owned()
}

/// Short songs without the critic: the batch machinery is under test, not the music.
fn request(id: &str, style: &str, seed: u64) -> String {
    format!(
        r#"{{"id": "{id}", "style": "{style}", "seconds": 8, "seed": {seed}, "think": "none", "stems": "drums,bass,lead"}}"#
    )
}

fn batch(requests: &Path, out: &Path, extra: &[&str]) -> Output {
    let mut args = vec![
        "batch",
        requests.to_str().unwrap(),
        "--out",
        out.to_str().unwrap(),
        "--synth-only",
    ];
    args.extend_from_slice(extra);
    refrain(&args)
}

fn summary(path: &Path) -> Vec<serde_json::Value> {
    fs::read_to_string(path)
        .unwrap()
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect()
}

fn outcomes(timing: &Path) -> Vec<String> {
    summary(timing)
        .iter()
        .map(|t| format!("{}:{}", t["id"].as_str().unwrap_or("-"), t["outcome"]))
        .collect()
}

#[test]
fn good_lines_become_songs_bad_ones_are_reported_and_a_rerun_skips_the_finished() {
    let dir = tempfile::tempdir().unwrap();
    let requests = dir.path().join("requests.jsonl");
    let out = dir.path().join("out");
    let text = [
        request("calm-1", "lofi", 1),
        r#"{"id": "broken", "style": "polka"}"#.to_string(),
        String::new(),
        request("bright-2", "chiptune", 2),
        r#"{"id": "too-fast", "bpm": 500, "seconds": 8, "think": "none"}"#.to_string(),
    ]
    .join("\n");
    fs::write(&requests, text).unwrap();

    let first = batch(&requests, &out, &[]);
    assert!(!first.status.success(), "two requests cannot be made");
    let message = stderr(&first);
    assert!(message.contains("line 2"), "{message}");
    assert!(message.contains("unknown style 'polka'"), "{message}");
    assert!(
        message.contains("2 of 4 requests failed (lines 2, 5)"),
        "{message}"
    );
    for id in ["calm-1", "bright-2"] {
        let manifest: serde_json::Value =
            serde_json::from_slice(&fs::read(out.join(id).join("manifest.json")).unwrap()).unwrap();
        assert_eq!(manifest["frames"], 8 * 48_000);
        assert!(out.join(id).join("mix.wav").is_file());
    }
    assert!(!out.join("broken").exists() && !out.join("too-fast").exists());

    let lines = summary(&out.join("summary.jsonl"));
    let statuses: Vec<(u64, &str, &str)> = lines
        .iter()
        .map(|l| {
            (
                l["line"].as_u64().unwrap(),
                l["id"].as_str().unwrap(),
                l["status"].as_str().unwrap(),
            )
        })
        .collect();
    assert_eq!(
        statuses,
        [
            (1, "calm-1", "ok"),
            (2, "broken", "error"),
            (4, "bright-2", "ok"),
            (5, "too-fast", "error")
        ]
    );
    assert_eq!(lines[0]["seconds"], 8.0);
    assert!(lines[0]["loudness_lufs"].is_number());
    assert!(lines[0]["true_peak_dbtp"].as_f64().unwrap() <= -1.0 + 1e-9);
    assert!(
        lines[0].get("critic_score").is_none(),
        "no critic at --think none"
    );
    assert!(lines[3]["error"].as_str().unwrap().contains("500 bpm"));

    // The same command again: the finished songs are kept, the failed request tried again.
    let summary_before = fs::read(out.join("summary.jsonl")).unwrap();
    let mix_before = fs::read(out.join("calm-1/mix.wav")).unwrap();
    let second = batch(&requests, &out, &[]);
    assert!(!second.status.success());
    assert!(
        stderr(&second).contains("1 to write, 2 already written"),
        "{}",
        stderr(&second)
    );
    assert_eq!(fs::read(out.join("summary.jsonl")).unwrap(), summary_before);
    assert_eq!(fs::read(out.join("calm-1/mix.wav")).unwrap(), mix_before);
    let timing = outcomes(&out.join("timing.jsonl"));
    assert_eq!(
        &timing[4..],
        [
            "calm-1:\"skipped\"",
            "broken:\"error\"",
            "bright-2:\"skipped\"",
            "too-fast:\"error\""
        ]
    );

    // A finished folder made from another request is not taken for this one.
    fs::write(&requests, request("calm-1", "lofi", 99)).unwrap();
    let changed = batch(&requests, &out, &[]);
    assert!(!changed.status.success());
    assert!(
        stderr(&changed).contains("made from another request"),
        "{}",
        stderr(&changed)
    );
}

#[test]
fn a_stopped_run_resumes_to_the_bytes_of_an_uninterrupted_one() {
    let dir = tempfile::tempdir().unwrap();
    let requests = dir.path().join("requests.jsonl");
    let text = [
        request("a", "lofi", 3),
        request("b", "synthwave", 4),
        request("c", "jazz", 5),
    ]
    .join("\n");
    fs::write(&requests, text).unwrap();

    let whole = dir.path().join("whole");
    let run = batch(&requests, &whole, &[]);
    assert!(run.status.success(), "{}", stderr(&run));

    // "Stopped" after a and c: shard 0/2 writes exactly those, then c is lost half-way (its
    // folder gone, an unfinished staging folder of a dead process left beside it).
    let resumed = dir.path().join("resumed");
    let shard = batch(&requests, &resumed, &["--shard", "0/2"]);
    assert!(shard.status.success(), "{}", stderr(&shard));
    assert!(resumed.join("a").is_dir() && resumed.join("c").is_dir());
    assert!(!resumed.join("b").exists());
    let shard_summary = summary(&resumed.join("summary.shard-0-of-2.jsonl"));
    assert_eq!(shard_summary.len(), 2);
    fs::remove_dir_all(resumed.join("c")).unwrap();
    let stale = resumed.join(".c.partial-999999");
    fs::create_dir_all(stale.join("stems")).unwrap();
    fs::write(stale.join("mix.wav"), b"half a song").unwrap();

    // The same command as the uninterrupted run, on two threads.
    let run = batch(&requests, &resumed, &["--jobs", "2"]);
    assert!(run.status.success(), "{}", stderr(&run));
    assert!(
        stderr(&run).contains("2 to write, 1 already written"),
        "{}",
        stderr(&run)
    );
    assert!(!stale.exists(), "the unfinished folder is cleared");
    for id in ["a", "b", "c"] {
        for file in ["mix.wav", "stems/lead.wav", "song.mid", "manifest.json"] {
            assert_eq!(
                fs::read(whole.join(id).join(file)).unwrap(),
                fs::read(resumed.join(id).join(file)).unwrap(),
                "{id}/{file}"
            );
        }
    }
    assert_eq!(
        fs::read(whole.join("summary.jsonl")).unwrap(),
        fs::read(resumed.join("summary.jsonl")).unwrap()
    );
    // A shard's summary lines are the whole run's lines of that shard.
    let whole_summary = summary(&whole.join("summary.jsonl"));
    assert_eq!(
        shard_summary,
        [whole_summary[0].clone(), whole_summary[2].clone()]
    );
    let leftovers: Vec<String> = fs::read_dir(&resumed)
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .filter(|name| name.starts_with('.'))
        .collect();
    assert!(leftovers.is_empty(), "{leftovers:?}");
}

#[test]
fn songs_batched_through_one_dit_pass_come_out_byte_identical() {
    let dir = tempfile::tempdir().unwrap();
    let requests = dir.path().join("requests.jsonl");
    let text = [
        request("a", "rock", 6),
        request("b", "folk", 7),
        request("c", "chiptune", 8),
    ]
    .join("\n");
    fs::write(&requests, text).unwrap();
    let alone = dir.path().join("alone");
    let run = batch(&requests, &alone, &[]);
    assert!(run.status.success(), "{}", stderr(&run));
    let batched = dir.path().join("batched");
    let run = batch(
        &requests,
        &batched,
        // A long linger, so a pass waits for all three workers even on a machine busy with
        // other tests (the default 5 ms gives single-window passes under load).
        &[
            "--jobs",
            "3",
            "--batch-windows",
            "64",
            "--batch-linger-ms",
            "2000",
        ],
    );
    assert!(run.status.success(), "{}", stderr(&run));
    let said = stderr(&run);
    let per_pass: f64 = said
        .split("windows (")
        .nth(1)
        .and_then(|rest| rest.split(' ').next())
        .and_then(|n| n.parse().ok())
        .unwrap_or_else(|| panic!("no batching report in: {said}"));
    assert!(per_pass > 1.0, "{said}");
    for id in ["a", "b", "c"] {
        for file in ["mix.wav", "song.mid"] {
            assert_eq!(
                fs::read(alone.join(id).join(file)).unwrap(),
                fs::read(batched.join(id).join(file)).unwrap(),
                "{id}/{file}"
            );
        }
    }
}

#[test]
fn a_shard_that_does_not_exist_is_refused_in_plain_words() {
    let dir = tempfile::tempdir().unwrap();
    let requests = dir.path().join("requests.jsonl");
    fs::write(&requests, request("a", "lofi", 1)).unwrap();
    let out = dir.path().join("out");
    for (shard, words) in [
        ("2/2", "I must be below N"),
        ("0/0", "at least 1"),
        ("one/two", "write it as I/N"),
    ] {
        let result = batch(&requests, &out, &["--shard", shard]);
        assert!(!result.status.success());
        assert!(
            stderr(&result).contains(words),
            "{shard}: {}",
            stderr(&result)
        );
    }
    let missing = batch(&dir.path().join("nope.jsonl"), &out, &[]);
    assert!(!missing.status.success());
    assert!(
        stderr(&missing).contains("reading the request file"),
        "{}",
        stderr(&missing)
    );
    // A shard with no requests of its own finishes with an empty summary.
    let empty = batch(&requests, &out, &["--shard", "1/3"]);
    assert!(empty.status.success(), "{}", stderr(&empty));
    assert_eq!(
        fs::read_to_string(out.join("summary.shard-1-of-3.jsonl")).unwrap(),
        ""
    );
}
