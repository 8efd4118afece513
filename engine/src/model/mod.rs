//! The learned models, inference side only: the bar autoencoder (stem-bar planes <-> latent
//! tokens), the diffusion transformer over those tokens, its conditions and its sampler.
//! Training lives in [`crate::train`] behind the `train` feature, so code that only samples
//! links none of it.

pub mod autoencoder;
pub mod batcher;
pub mod conditions;
pub mod dit;
pub mod offload;
pub mod playing;
pub mod rhythm;
pub mod sampler;

pub use autoencoder::{BarAutoencoder, BarAutoencoderConfig, BarGrid};
pub use batcher::{Denoiser, DitBatcher};
pub use dit::{Dit, DitConfig};
pub use offload::OffloadedDit;

use crate::Error;
use burn::prelude::Backend;
use burn::store::{ModuleSnapshot, SafetensorsStore};
use std::collections::BTreeMap;
use std::io::{Read, Seek, SeekFrom, Write};
use std::path::Path;

/// Writes `module`'s weights as one safetensors file with `refrain.model` (`model`) and
/// `refrain.config` (`config`) in its metadata, then puts the metadata's keys in order, so
/// the same weights and config give the same bytes: the writer stores them from a hash map,
/// in an order that changes from run to run.
pub fn save_safetensors<B: Backend, M: ModuleSnapshot<B>>(
    module: &M,
    model: &str,
    config: String,
    path: &Path,
) -> Result<(), Error> {
    let mut store = SafetensorsStore::from_file(path)
        .overwrite(true)
        .metadata("refrain.model", model)
        .metadata("refrain.config", config);
    module
        .save_into(&mut store)
        .map_err(|e| Error::Model(format!("writing {}: {e}", path.display())))?;
    sort_metadata(path)
}

/// Rewrites, in place, the `__metadata__` object that a safetensors header opens with, its
/// keys in order. The same keys and values take the same bytes in any order, so nothing
/// after it moves.
fn sort_metadata(path: &Path) -> Result<(), Error> {
    const OPENING: &[u8] = b"{\"__metadata__\":";
    let failed = |e: std::io::Error| Error::io(format!("ordering {}", path.display()), e);
    let mut file = std::fs::OpenOptions::new()
        .read(true)
        .write(true)
        .open(path)
        .map_err(failed)?;
    let mut length = [0u8; 8];
    file.read_exact(&mut length).map_err(failed)?;
    let mut header = vec![0u8; u64::from_le_bytes(length).min(100 << 20) as usize];
    file.read_exact(&mut header).map_err(failed)?;
    let unexpected = || Error::Model(format!("{}: unexpected safetensors header", path.display()));
    let Some(rest) = header.strip_prefix(OPENING) else {
        return Err(unexpected());
    };
    let mut objects =
        serde_json::Deserializer::from_slice(rest).into_iter::<BTreeMap<String, String>>();
    let metadata = objects
        .next()
        .ok_or_else(unexpected)?
        .map_err(|_| unexpected())?;
    let sorted = serde_json::to_vec(&metadata).map_err(|_| unexpected())?;
    if sorted.len() != objects.byte_offset() {
        return Err(unexpected());
    }
    file.seek(SeekFrom::Start((8 + OPENING.len()) as u64))
        .and_then(|_| file.write_all(&sorted))
        .map_err(failed)
}

/// The `refrain.config` metadata of a safetensors file written by one of our models, after
/// checking its `refrain.model` is `model`. Reads only the header.
pub fn safetensors_metadata(path: &Path, model: &str) -> Result<String, Error> {
    let unreadable = |why: String| Error::Model(format!("{}: {why}", path.display()));
    let mut file = std::fs::File::open(path)
        .map_err(|e| Error::io(format!("opening model weights {}", path.display()), e))?;
    let mut length = [0u8; 8];
    file.read_exact(&mut length)
        .map_err(|_| unreadable("not a safetensors file (too short)".into()))?;
    let length = u64::from_le_bytes(length);
    if length > 100 << 20 {
        return Err(unreadable(
            "not a safetensors file (header too large)".into(),
        ));
    }
    let mut header = vec![0u8; length as usize];
    file.read_exact(&mut header)
        .map_err(|_| unreadable("not a safetensors file (header cut short)".into()))?;
    let header: serde_json::Value = serde_json::from_slice(&header)
        .map_err(|e| unreadable(format!("not a safetensors file ({e})")))?;
    let metadata = &header["__metadata__"];
    let found = metadata["refrain.model"]
        .as_str()
        .unwrap_or("nothing refrain knows");
    if found != model {
        return Err(unreadable(format!("holds {found}, not a {model}")));
    }
    metadata["refrain.config"]
        .as_str()
        .map(str::to_string)
        .ok_or_else(|| unreadable("has no refrain.config metadata".into()))
}

/// The config stored in a safetensors file written by one of our models: the
/// `refrain.config` metadata read over `defaults`, so fields added since the file was written
/// take their default values.
pub fn read_config<C>(path: &Path, model: &str, defaults: C) -> Result<C, Error>
where
    C: serde::Serialize + serde::de::DeserializeOwned,
{
    let json = safetensors_metadata(path, model)?;
    json_over(&defaults, &json).map_err(|e| {
        Error::Model(format!(
            "{} has an unreadable {model} config: {e}",
            path.display()
        ))
    })
}

/// `json` read over `base`: fields `json` lacks, at any depth, keep `base`'s values.
pub(crate) fn json_over<C>(base: &C, json: &str) -> Result<C, serde_json::Error>
where
    C: serde::Serialize + serde::de::DeserializeOwned,
{
    fn merge(into: &mut serde_json::Value, found: serde_json::Value) {
        match (into, found) {
            (serde_json::Value::Object(into), serde_json::Value::Object(found)) => {
                for (key, value) in found {
                    match into.get_mut(&key) {
                        Some(slot) => merge(slot, value),
                        None => {
                            into.insert(key, value);
                        }
                    }
                }
            }
            (into, found) => *into = found,
        }
    }
    let mut merged = serde_json::to_value(base)?;
    merge(&mut merged, serde_json::from_str(json)?);
    serde_json::from_value(merged)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn json_over_keeps_the_base_where_the_json_is_silent_at_any_depth() {
        let base = DitConfig::new().with_onset_shift(vec![1.0; 5]);
        let old = r#"{"latent_dim": 32, "d_model": 64}"#;
        let read: DitConfig = json_over(&base, old).unwrap();
        assert_eq!((read.latent_dim, read.d_model), (32, 64));
        assert_eq!(read.onset_shift, vec![1.0; 5]);
        let nested = serde_json::json!({ "outer": { "a": 1, "b": 2 }, "c": 3 });
        let read: serde_json::Value = json_over(&nested, r#"{"outer": {"a": 5}}"#).unwrap();
        assert_eq!(
            read,
            serde_json::json!({ "outer": { "a": 5, "b": 2 }, "c": 3 })
        );
        assert!(json_over(&base, "not json").is_err());
    }
}
