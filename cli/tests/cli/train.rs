//! `refrain train autoencoder`: a short run on a small dataset writes weights, card, loss log
//! and checkpoints; an existing run is refused without --resume and continued with it.

use refrain_engine::corpus::CorpusReport;
use refrain_engine::dataset::{Split, own_song_pieces, write_dataset};
use std::path::Path;
use std::process::{Command, Output};

pub(crate) fn refrain(args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_refrain"))
        .args(args)
        .output()
        .expect("the refrain binary runs")
}

/// Eight of refrain's own songs, two held out.
pub(crate) fn small_dataset(out: &Path) {
    let mut pieces = own_song_pieces(1);
    for (i, piece) in pieces.iter_mut().enumerate() {
        piece.split = if i % 4 == 1 {
            Split::Validation
        } else {
            Split::Train
        };
    }
    write_dataset(
        out,
        false,
        &CorpusReport::default(),
        ("none", "none"),
        &pieces,
        Vec::new(),
    )
    .unwrap();
}

#[test]
fn a_short_run_writes_weights_and_log_and_resumes() {
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("data");
    small_dataset(&data);
    let run = dir.path().join("run");
    let train = |steps: &str, resume: bool| {
        let mut args = vec![
            "train",
            "autoencoder",
            "--data",
            data.to_str().unwrap(),
            "--out",
            run.to_str().unwrap(),
            "--batch",
            "16",
            "--eval-every",
            "2",
            "--eval-bars",
            "32",
            "--checkpoint-every",
            "2",
            "--latent-dim",
            "8",
            "--steps",
            steps,
        ];
        if resume {
            args.push("--resume");
        }
        refrain(&args)
    };
    let first = train("4", false);
    assert!(
        first.status.success(),
        "{}",
        String::from_utf8_lossy(&first.stderr)
    );
    for file in [
        "autoencoder.safetensors",
        "autoencoder.json",
        "loss.csv",
        "training.json",
    ] {
        assert!(run.join(file).is_file(), "{file}");
    }
    let log = std::fs::read_to_string(run.join("loss.csv")).unwrap();
    assert_eq!(log.lines().count(), 3, "{log}");
    assert!(log.starts_with("step,train_loss,validation_loss,validation_note_f1"));

    let again = train("4", false);
    assert!(!again.status.success());
    assert!(String::from_utf8_lossy(&again.stderr).contains("--resume"));

    let resumed = train("6", true);
    assert!(
        resumed.status.success(),
        "{}",
        String::from_utf8_lossy(&resumed.stderr)
    );
    let log = std::fs::read_to_string(run.join("loss.csv")).unwrap();
    assert_eq!(log.lines().count(), 4, "{log}");
}

#[test]
fn training_on_a_folder_that_is_not_a_dataset_fails_in_words() {
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().join("run");
    let result = refrain(&[
        "train",
        "autoencoder",
        "--data",
        dir.path().to_str().unwrap(),
        "--out",
        out.to_str().unwrap(),
    ]);
    assert!(!result.status.success());
    let stderr = String::from_utf8_lossy(&result.stderr);
    assert!(stderr.contains("manifest.json"), "{stderr}");
    assert!(!stderr.contains("panicked"));
}

#[test]
fn calibrate_stores_a_shift_per_stem_in_the_dit_file_and_refuses_bad_input() {
    use burn::backend::Flex;
    use refrain_engine::model::Dit;
    use refrain_engine::writer::{AUTOENCODER_FILE, DIT_FILE};

    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("data");
    small_dataset(&data);
    let shipped = Path::new(env!("CARGO_MANIFEST_DIR")).join("../assets");
    let assets = dir.path().join("assets");
    std::fs::create_dir(&assets).unwrap();
    for file in [AUTOENCODER_FILE, DIT_FILE] {
        std::fs::copy(shipped.join(file), assets.join(file)).unwrap();
    }
    let (data, assets_arg) = (data.to_str().unwrap(), assets.to_str().unwrap());

    let calibrate = |more: &[&str]| {
        let mut args = vec!["train", "calibrate", "--data", data, "--assets", assets_arg];
        args.extend_from_slice(more);
        refrain(&args)
    };

    // The folder to rewrite is always named: never the shipped file by default.
    let unnamed = refrain(&["train", "calibrate", "--data", data]);
    assert!(!unnamed.status.success());
    let stderr = String::from_utf8_lossy(&unnamed.stderr);
    assert!(stderr.contains("--assets"), "{stderr}");

    for (bad, message) in [
        ("--windows=0", "--windows and"),
        ("--hold-within-errors=-1", "a number of standard errors"),
        ("--fit-lifts=drums", "all, pitched"),
    ] {
        let refused = calibrate(&[bad]);
        assert!(!refused.status.success());
        let stderr = String::from_utf8_lossy(&refused.stderr);
        assert!(stderr.contains(message), "{stderr}");
    }

    let result = calibrate(&[
        "--windows",
        "8",
        "--style-windows",
        "4",
        "--window-bars",
        "4",
        "--song-rounds",
        "1",
        "--songs-per-style",
        "1",
        "--plans-per-style",
        "4",
    ]);
    let stderr = String::from_utf8_lossy(&result.stderr);
    assert!(result.status.success(), "{stderr}");
    let stdout = String::from_utf8_lossy(&result.stdout);
    assert!(
        stdout.contains("lead")
            && stdout.contains("held-out")
            && stdout.contains("whole songs")
            && stdout.contains("plans' harmony"),
        "{stdout}"
    );
    let load = || Dit::<Flex>::load_safetensors(&assets.join(DIT_FILE), &Default::default());
    let (config, _) = load().unwrap();
    assert_eq!(config.onset_shift.len(), 5);
    assert!(config.onset_shift.iter().all(|s| s.is_finite()));
    assert_eq!(config.onset_shift_by_style.len(), 8 * 5);
    assert!(config.onset_shift_by_style.iter().all(|s| s.is_finite()));
    assert_eq!(config.drum_shift_by_style.len(), 8 * 11);
    assert_eq!(config.plan_labelling_by_style.len(), 8);
    assert!(config.plan_labelling_by_style.iter().all(|l| l.is_valid()));
    let left: Vec<_> = std::fs::read_dir(&assets).unwrap().collect();
    assert_eq!(left.len(), 2, "no partial file left behind");

    // The song rounds alone keep the window fit (the shared shifts, the lifts).
    let result = calibrate(&[
        "--songs-only",
        "--song-rounds",
        "1",
        "--songs-per-style",
        "1",
        "--song-requests",
        "pieces",
        "--plans-per-style",
        "4",
        "--hold-within-errors",
        "2",
    ]);
    let stderr = String::from_utf8_lossy(&result.stderr);
    assert!(result.status.success(), "{stderr}");
    let (again, _) = load().unwrap();
    assert_eq!(again.onset_shift, config.onset_shift);
    assert_eq!(again.rhythm_lift_by_style, config.rhythm_lift_by_style);
    assert_eq!(
        again.plan_labelling_by_style,
        config.plan_labelling_by_style
    );

    // With the lifts fitted too, they only ever rise.
    let result = calibrate(&[
        "--songs-only",
        "--fit-lifts",
        "--lift-below",
        "lower-quartile",
        "--match-polyphony",
        "off",
        "--song-rounds",
        "2",
        "--songs-per-style",
        "1",
        "--plans-per-style",
        "0",
    ]);
    let stderr = String::from_utf8_lossy(&result.stderr);
    assert!(result.status.success(), "{stderr}");
    let stdout = String::from_utf8_lossy(&result.stdout);
    assert!(stdout.contains("groove of whole songs"), "{stdout}");
    assert!(stdout.contains("(lifts below "), "{stdout}");
    let (lifted, _) = load().unwrap();
    assert!(
        lifted.plan_labelling_by_style.is_empty(),
        "0 plans label as the corpus was"
    );
    assert_eq!(lifted.rhythm_lift_by_style.len(), 8 * 5);
    for (after, before) in lifted
        .rhythm_lift_by_style
        .iter()
        .zip(&again.rhythm_lift_by_style)
    {
        assert!(after >= before, "{after} < {before}");
    }
}

#[test]
fn train_dit_fits_its_steps_to_a_wall_time_budget_and_fine_tunes_its_result() {
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("data");
    small_dataset(&data);
    let autoencoder =
        Path::new(env!("CARGO_MANIFEST_DIR")).join("../assets/autoencoder.safetensors");
    let run = dir.path().join("run");
    let train = |more: &[&str]| {
        let mut args = vec![
            "train",
            "dit",
            "--data",
            data.to_str().unwrap(),
            "--autoencoder",
            autoencoder.to_str().unwrap(),
            "--out",
            run.to_str().unwrap(),
            "--backend",
            "flex",
            "--d-model",
            "16",
            "--layers",
            "1",
            "--heads",
            "2",
            "--batch",
            "4",
            "--window-bars",
            "4",
        ];
        args.extend_from_slice(more);
        refrain(&args)
    };

    let clash = train(&["--minutes", "1", "--steps", "10"]);
    assert!(!clash.status.success());
    assert!(String::from_utf8_lossy(&clash.stderr).contains("--minutes"));
    let too_short = train(&["--minutes", "0.001"]);
    let stderr = String::from_utf8_lossy(&too_short.stderr);
    assert!(!too_short.status.success());
    assert!(stderr.contains("give more time"), "{stderr}");
    assert!(!stderr.contains("panicked"), "{stderr}");

    let fitted = train(&["--minutes", "0.2"]);
    let stderr = String::from_utf8_lossy(&fitted.stderr);
    assert!(fitted.status.success(), "{stderr}");
    // "... 1200 steps fit in the 11 s left (repeat this run with --steps 1200)"
    let steps: u64 = stderr
        .split("--steps ")
        .nth(1)
        .and_then(|rest| rest.split(')').next())
        .and_then(|n| n.parse().ok())
        .unwrap_or_else(|| panic!("no step count in {stderr}"));
    eprintln!("the 12 s budget fitted {steps} steps");
    assert!(steps >= 400 && steps.is_multiple_of(100), "{steps}");
    let config = std::fs::read_to_string(run.join("training.json")).unwrap();
    assert!(config.contains(&format!("\"steps\": {steps}")), "{config}");
    assert!(run.join("dit.safetensors").is_file());
    assert!(!run.join("probe").exists(), "the probe run is removed");

    // A fine-tune of that run with the decoded-onset term: it keeps the file's architecture
    // (the --d-model etc. given are ignored) and records where it started.
    let start = run.join("dit.safetensors");
    let tune = |out: &str, more: &[&str]| {
        let out = dir.path().join(out);
        let mut args = vec![
            "train",
            "dit",
            "--data",
            data.to_str().unwrap(),
            "--autoencoder",
            autoencoder.to_str().unwrap(),
            "--out",
            out.to_str().unwrap(),
            "--backend",
            "flex",
            "--batch",
            "4",
            "--window-bars",
            "4",
            "--steps",
            "6",
            "--eval-every",
            "3",
        ];
        args.extend_from_slice(more);
        (refrain(&args), out)
    };
    let (tuned, out) = tune(
        "tuned",
        &[
            "--init-from",
            start.to_str().unwrap(),
            "--onset-loss-weight",
            "1",
            "--groove-loss-weight",
            "1",
        ],
    );
    let stderr = String::from_utf8_lossy(&tuned.stderr);
    assert!(tuned.status.success(), "{stderr}");
    let config = std::fs::read_to_string(out.join("training.json")).unwrap();
    assert!(config.contains("\"onset_loss_weight\": 1.0"), "{config}");
    assert!(config.contains("\"groove_loss_weight\": 1.0"), "{config}");
    assert!(config.contains("sha256"), "{config}");
    assert!(config.contains("\"d_model\": 16"), "{config}");
    assert!(out.join("dit.safetensors").is_file());

    for (name, more, words) in [
        (
            "missing",
            vec!["--init-from", "no/such/dit.safetensors"],
            "no/such/dit.safetensors",
        ),
        (
            "negative",
            vec!["--onset-loss-weight=-1"],
            "onset loss weight",
        ),
        (
            "not a number",
            vec!["--groove-loss-weight=NaN"],
            "groove loss weight",
        ),
    ] {
        let (refused, out) = tune(name, &more);
        let stderr = String::from_utf8_lossy(&refused.stderr);
        assert!(!refused.status.success(), "{name}");
        assert!(stderr.contains(words), "{name}: {stderr}");
        assert!(!stderr.contains("panicked"), "{name}: {stderr}");
        assert!(!out.join("dit.safetensors").exists(), "{name}");
    }
}
