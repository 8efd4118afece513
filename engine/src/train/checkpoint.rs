//! Checkpoints (any model trained with AdamW): model and optimiser state (Burn's binary records, which keep the parameter
//! ids the optimiser's moments are filed under) plus the loop's own state, written into a
//! staging folder and renamed into place so a crash never leaves a half checkpoint.

use crate::Error;
use crate::model::BarAutoencoder;
use burn::module::AutodiffModule;
use burn::optim::AdamW;
use burn::optim::Optimizer;
use burn::optim::adaptor::OptimizerAdaptor;
use burn::record::{BinFileRecorder, FullPrecisionSettings, Recorder};
use burn::tensor::backend::AutodiffBackend;
use serde::{Deserialize, Serialize};
use std::fs;
use std::path::{Path, PathBuf};

/// The optimiser every model here trains with.
pub type ModelOptimizer<M, B> = OptimizerAdaptor<AdamW, M, B>;
/// The optimiser the autoencoder trains with.
pub type AutoencoderOptimizer<B> = ModelOptimizer<BarAutoencoder<B>, B>;

/// What the loop needs besides the weights to continue exactly where it stopped.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct LoopState {
    /// Steps done.
    pub step: u64,
    /// Sum and count of the training losses since the last evaluation (for the CSV's mean).
    pub loss_sum: f64,
    pub loss_count: u64,
}

fn recorder() -> BinFileRecorder<FullPrecisionSettings> {
    BinFileRecorder::new()
}

fn checkpoints_dir(out: &Path) -> PathBuf {
    out.join("checkpoints")
}

/// The newest complete checkpoint in `out`, if any.
pub fn latest(out: &Path) -> Result<Option<PathBuf>, Error> {
    let dir = checkpoints_dir(out);
    if !dir.is_dir() {
        return Ok(None);
    }
    let mut found: Vec<PathBuf> = fs::read_dir(&dir)
        .map_err(|e| Error::io(format!("reading {}", dir.display()), e))?
        .filter_map(|entry| entry.ok().map(|e| e.path()))
        .filter(|p| {
            p.file_name()
                .and_then(|n| n.to_str())
                .is_some_and(|n| n.starts_with("step-"))
                && p.join("state.json").is_file()
        })
        .collect();
    // Zero-padded step numbers sort by name.
    found.sort();
    Ok(found.pop())
}

/// Writes a checkpoint for `state.step` and keeps only the newest `keep`.
pub fn save<B: AutodiffBackend, M: AutodiffModule<B>>(
    out: &Path,
    model: &M,
    optimizer: &ModelOptimizer<M, B>,
    state: &LoopState,
    keep: usize,
) -> Result<PathBuf, Error> {
    let dir = checkpoints_dir(out);
    let name = format!("step-{:09}", state.step);
    let staging = dir.join(format!(".{name}.partial"));
    let target = dir.join(&name);
    let _ = fs::remove_dir_all(&staging);
    fs::create_dir_all(&staging)
        .map_err(|e| Error::io(format!("creating {}", staging.display()), e))?;
    model
        .clone()
        .save_file(staging.join("model"), &recorder())
        .map_err(|e| Error::Model(format!("writing the model checkpoint: {e}")))?;
    Recorder::<B>::record(
        &recorder(),
        optimizer.to_record(),
        staging.join("optimizer"),
    )
    .map_err(|e| Error::Model(format!("writing the optimiser checkpoint: {e}")))?;
    let json = serde_json::to_vec_pretty(state).map_err(|e| Error::Model(e.to_string()))?;
    fs::write(staging.join("state.json"), json)
        .map_err(|e| Error::io(format!("writing {}", staging.display()), e))?;
    let _ = fs::remove_dir_all(&target);
    fs::rename(&staging, &target)
        .map_err(|e| Error::io(format!("moving a checkpoint to {}", target.display()), e))?;
    prune(&dir, keep)?;
    Ok(target)
}

fn prune(dir: &Path, keep: usize) -> Result<(), Error> {
    let mut all: Vec<PathBuf> = fs::read_dir(dir)
        .map_err(|e| Error::io(format!("reading {}", dir.display()), e))?
        .filter_map(|entry| entry.ok().map(|e| e.path()))
        .filter(|p| {
            p.file_name()
                .and_then(|n| n.to_str())
                .is_some_and(|n| n.starts_with("step-"))
        })
        .collect();
    all.sort();
    let excess = all.len().saturating_sub(keep.max(1));
    for old in &all[..excess] {
        fs::remove_dir_all(old).map_err(|e| Error::io(format!("removing {}", old.display()), e))?;
    }
    Ok(())
}

/// Why a checkpoint could not be read, in words.
fn unreadable(checkpoint: &Path, what: &str, e: &dyn std::fmt::Display) -> Error {
    Error::Model(format!(
        "cannot read the checkpoint {} ({what}: {e}); was it written with another config?",
        checkpoint.display()
    ))
}

/// Loads a checkpoint into a model and optimiser built from the run's config.
pub fn load<B: AutodiffBackend, M: AutodiffModule<B>>(
    checkpoint: &Path,
    model: M,
    optimizer: ModelOptimizer<M, B>,
    device: &B::Device,
) -> Result<(M, ModelOptimizer<M, B>, LoopState), Error> {
    let (model, state) = load_model(checkpoint, model, device)?;
    let record = Recorder::<B>::load(&recorder(), checkpoint.join("optimizer"), device)
        .map_err(|e| unreadable(checkpoint, "optimiser", &e))?;
    Ok((model, optimizer.load_record(record), state))
}

/// Loads only the model of a checkpoint and the loop state (inference needs no optimiser).
pub fn load_model<B: burn::tensor::backend::Backend, M: burn::module::Module<B>>(
    checkpoint: &Path,
    model: M,
    device: &B::Device,
) -> Result<(M, LoopState), Error> {
    let state_path = checkpoint.join("state.json");
    let bytes = fs::read(&state_path)
        .map_err(|e| Error::io(format!("reading {}", state_path.display()), e))?;
    let state: LoopState =
        serde_json::from_slice(&bytes).map_err(|e| unreadable(checkpoint, "state.json", &e))?;
    let model = model
        .load_file(checkpoint.join("model"), &recorder(), device)
        .map_err(|e| unreadable(checkpoint, "model", &e))?;
    Ok((model, state))
}
