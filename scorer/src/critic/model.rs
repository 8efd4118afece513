//! The critic network: a small pre-norm transformer over a window's stem-bar tokens with one
//! summary token, read out as logits for "good overall" and for each musical aspect, then
//! calibrated (one scale and bias per output, fitted on held-out pieces).

use super::tokens::{CriticInput, FEATURES};
use crate::Error;
use burn::module::Module;
use burn::nn::{Embedding, EmbeddingConfig, Linear, LinearConfig};
use burn::prelude::*;
use burn::store::{ModuleSnapshot, SafetensorsStore};
use burn::tensor::activation::gelu;
use rand::SeedableRng;
use rand_chacha::ChaCha8Rng;
use refrain_engine::critic::ASPECTS;
use refrain_engine::model::DitConfig;
use refrain_engine::model::autoencoder::SeededInit;
use refrain_engine::model::dit::{TOKEN_FIELDS, field_tensors, norm, self_attention};
use std::path::Path;

/// Outputs: overall, then one per aspect.
pub const OUTPUTS: usize = 1 + ASPECTS.len();

/// Configuration of a [`CriticModel`].
#[derive(Config, Debug, PartialEq)]
pub struct CriticConfig {
    #[config(default = 96)]
    pub d_model: usize,
    #[config(default = 3)]
    pub layers: usize,
    #[config(default = 4)]
    pub heads: usize,
    #[config(default = 4)]
    pub mlp_ratio: usize,
    /// Per output, `[scale, bias]` applied to the raw logit before the sigmoid (Platt
    /// scaling fitted on held-out pieces). Empty means identity.
    #[config(default = "Vec::new()")]
    pub calibration: Vec<[f32; 2]>,
    /// Overall score a segment needs to be accepted, chosen with the calibration.
    #[config(default = 0.5)]
    pub threshold: f32,
}

impl CriticConfig {
    /// The DiT config whose field vocabulary the critic shares (16-bar windows, 5 stems).
    pub fn fields() -> DitConfig {
        DitConfig::new()
    }

    pub fn validate(&self) -> Result<(), Error> {
        if self.d_model == 0 || self.heads == 0 || !self.d_model.is_multiple_of(self.heads) {
            return Err(Error::Model(format!(
                "critic config: d_model {} must be a positive multiple of heads {}",
                self.d_model, self.heads
            )));
        }
        if !self.calibration.is_empty()
            && (self.calibration.len() != OUTPUTS
                || self.calibration.iter().flatten().any(|v| !v.is_finite()))
        {
            return Err(Error::Model(format!(
                "critic config: calibration needs {OUTPUTS} finite [scale, bias] pairs"
            )));
        }
        Ok(())
    }

    /// Builds the model with weights from a stream seeded by `seed`.
    pub fn init_seeded<B: Backend>(&self, device: &B::Device, seed: u64) -> CriticModel<B> {
        self.init_shape::<B>(device).map(&mut SeededInit::new(
            ChaCha8Rng::seed_from_u64(seed),
            device.clone(),
        ))
    }

    fn init_shape<B: Backend>(&self, device: &B::Device) -> CriticModel<B> {
        let d = self.d_model;
        let fields = Self::fields();
        let (_, token_table) = fields.token_offsets();
        let (_, song_table) = fields.song_offsets();
        CriticModel {
            features_in: LinearConfig::new(FEATURES, d).init(device),
            token_table: EmbeddingConfig::new(token_table, d).init(device),
            song_table: EmbeddingConfig::new(song_table, d).init(device),
            summary: EmbeddingConfig::new(1, d).init(device),
            blocks: (0..self.layers)
                .map(|_| CriticBlock {
                    qkv: LinearConfig::new(d, 3 * d).init(device),
                    attention_out: LinearConfig::new(d, d).init(device),
                    mlp_in: LinearConfig::new(d, self.mlp_ratio * d).init(device),
                    mlp_out: LinearConfig::new(self.mlp_ratio * d, d).init(device),
                })
                .collect(),
            out: LinearConfig::new(d, OUTPUTS).init(device),
            heads: self.heads,
            d_model: d,
        }
    }

    /// Calibrated probabilities from raw logits (`[OUTPUTS]` each).
    pub fn probabilities(&self, logits: &[f32]) -> Vec<f32> {
        logits
            .iter()
            .enumerate()
            .map(|(i, &z)| {
                let [scale, bias] = self
                    .calibration
                    .get(i % OUTPUTS)
                    .copied()
                    .unwrap_or([1.0, 0.0]);
                sigmoid(z * scale + bias)
            })
            .collect()
    }
}

pub fn sigmoid(z: f32) -> f32 {
    1.0 / (1.0 + (-z).exp())
}

/// One pre-norm transformer block.
#[derive(Module, Debug)]
pub struct CriticBlock<B: Backend> {
    qkv: Linear<B>,
    attention_out: Linear<B>,
    mlp_in: Linear<B>,
    mlp_out: Linear<B>,
}

/// The critic; see the module documentation.
#[derive(Module, Debug)]
pub struct CriticModel<B: Backend> {
    features_in: Linear<B>,
    token_table: Embedding<B>,
    song_table: Embedding<B>,
    summary: Embedding<B>,
    blocks: Vec<CriticBlock<B>>,
    out: Linear<B>,
    heads: usize,
    d_model: usize,
}

/// A batch of critic inputs as tensors.
#[derive(Clone, Debug)]
pub struct CriticBatch<B: Backend> {
    /// `[batch, tokens, FEATURES]`
    pub features: Tensor<B, 3>,
    /// `[batch, tokens * TOKEN_FIELDS]`, offset into the shared table.
    pub token_fields: Tensor<B, 2, Int>,
    /// `[batch, SONG_FIELDS]`, offset likewise.
    pub song_fields: Tensor<B, 2, Int>,
}

impl<B: Backend> CriticBatch<B> {
    /// Stacks inputs of the same number of bars.
    pub fn new(inputs: &[&CriticInput], device: &B::Device) -> Result<Self, Error> {
        let Some(first) = inputs.first() else {
            return Err(Error::Model("no candidates to judge".into()));
        };
        if inputs.iter().any(|i| i.bars != first.bars) || first.bars == 0 || first.bars > 16 {
            return Err(Error::Model(
                "candidates judged together need the same number of bars, 1 to 16".into(),
            ));
        }
        let tokens = first.token_fields.len();
        let features: Vec<f32> = inputs
            .iter()
            .flat_map(|i| i.features.iter().copied())
            .collect();
        let token_fields: Vec<[u8; TOKEN_FIELDS]> = inputs
            .iter()
            .flat_map(|i| i.token_fields.iter().copied())
            .collect();
        let song_fields: Vec<_> = inputs.iter().map(|i| i.song_fields).collect();
        let (token_fields, song_fields) =
            field_tensors::<B>(&CriticConfig::fields(), &token_fields, &song_fields, device);
        Ok(CriticBatch {
            features: Tensor::from_data(
                TensorData::new(features, [inputs.len(), tokens, FEATURES]),
                device,
            ),
            token_fields,
            song_fields,
        })
    }
}

impl<B: Backend> CriticBlock<B> {
    fn forward(&self, x: Tensor<B, 3>, heads: usize) -> Tensor<B, 3> {
        let x = x.clone()
            + self
                .attention_out
                .forward(self_attention(&self.qkv, norm(x), heads));
        x.clone() + self.mlp_out.forward(gelu(self.mlp_in.forward(norm(x))))
    }
}

impl<B: Backend> CriticModel<B> {
    /// Raw logits: overall, then one per aspect.
    ///
    /// # Shapes
    /// - see [`CriticBatch`]; output `[batch, OUTPUTS]`
    pub fn forward(&self, batch: CriticBatch<B>) -> Tensor<B, 2> {
        let [size, tokens, _] = batch.features.dims();
        let d = self.d_model;
        let fields = self
            .token_table
            .forward(batch.token_fields)
            .reshape([size, tokens, TOKEN_FIELDS, d])
            .sum_dim(2)
            .reshape([size, tokens, d]);
        let song = self
            .song_table
            .forward(batch.song_fields)
            .sum_dim(1)
            .reshape([size, 1, d]);
        let device = song.device();
        let summary = self
            .summary
            .forward(Tensor::<B, 2, Int>::zeros([size, 1], &device))
            .reshape([size, 1, d]);
        let x = self.features_in.forward(batch.features) + fields + song.clone();
        let mut x = Tensor::cat(vec![summary + song, x], 1);
        for block in &self.blocks {
            x = block.forward(x, self.heads);
        }
        let summary = norm(x.narrow(1, 0, 1)).reshape([size, d]);
        self.out.forward(summary)
    }

    /// Writes the weights as one safetensors file with the config in its metadata.
    pub fn save_safetensors(&self, config: &CriticConfig, path: &Path) -> Result<(), Error> {
        Ok(refrain_engine::model::save_safetensors(
            self,
            "critic",
            config.to_string(),
            path,
        )?)
    }

    /// Loads a file written by [`Self::save_safetensors`].
    pub fn load_safetensors(
        path: &Path,
        device: &B::Device,
    ) -> Result<(CriticConfig, CriticModel<B>), Error> {
        let config = refrain_engine::model::read_config(path, "critic", CriticConfig::new())?;
        config.validate()?;
        let mut model = config.init_shape::<B>(device);
        let result = model
            .load_from(&mut SafetensorsStore::from_file(path))
            .map_err(|e| Error::Model(format!("reading {}: {e}", path.display())))?;
        if !result.missing.is_empty() || !result.errors.is_empty() {
            return Err(Error::Model(format!(
                "{} does not fit its own critic config: missing {:?}, errors {:?}",
                path.display(),
                result.missing,
                result.errors
            )));
        }
        Ok((config, model))
    }
}
