//! The learned models, inference side only: the bar autoencoder (stem-bar planes <-> latent
//! tokens), the diffusion transformer over those tokens, its conditions and its sampler.
//! Training lives in [`crate::train`] behind the `train` feature, so code that only samples
//! links none of it.

pub mod autoencoder;
pub mod conditions;
pub mod dit;
pub mod sampler;

pub use autoencoder::{BarAutoencoder, BarAutoencoderConfig, BarGrid};
pub use dit::{Dit, DitConfig};

use crate::Error;
use std::io::Read;
use std::path::Path;

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
pub(crate) fn read_config<C>(path: &Path, model: &str, defaults: C) -> Result<C, Error>
where
    C: serde::Serialize + serde::de::DeserializeOwned,
{
    let json = safetensors_metadata(path, model)?;
    let unreadable = |e: serde_json::Error| {
        Error::Model(format!(
            "{} has an unreadable {model} config: {e}",
            path.display()
        ))
    };
    let mut merged = serde_json::to_value(defaults).map_err(unreadable)?;
    let found: serde_json::Value = serde_json::from_str(&json).map_err(unreadable)?;
    if let (Some(merged), Some(found)) = (merged.as_object_mut(), found.as_object()) {
        merged.extend(found.clone());
    }
    serde_json::from_value(merged).map_err(unreadable)
}
