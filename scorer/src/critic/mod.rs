//! The learned critic: judges a candidate segment (its window of notes under the requested
//! conditions) with calibrated probabilities, overall and per aspect, and says why in words.
//! Implements the engine's [`Critic`] trait, so the reasoning loop can use it; also judges
//! any MIDI file on its own (`refrain score`).

pub mod model;
pub mod negatives;
pub mod reasons;
pub mod tokens;
#[cfg(feature = "train")]
pub mod train;

pub use model::{CriticConfig, CriticModel, OUTPUTS};

use crate::Error;
use burn::prelude::*;
use model::CriticBatch;
use refrain_engine::critic::{ASPECTS, Candidate, Critic, Judgement};
use refrain_engine::generate::{ModelEntry, sha256_hex};
use std::path::Path;
use tokens::critic_input;

/// File name of the shipped critic weights inside an assets folder.
pub const CRITIC_FILE: &str = "critic.safetensors";

/// The trained critic, ready to judge.
pub struct LearnedCritic<B: Backend> {
    pub model: CriticModel<B>,
    pub config: CriticConfig,
    pub device: B::Device,
    entry: Option<ModelEntry>,
}

impl<B: Backend> LearnedCritic<B> {
    pub fn new(model: CriticModel<B>, config: CriticConfig, device: B::Device) -> Self {
        LearnedCritic {
            model,
            config,
            device,
            entry: None,
        }
    }

    /// Loads `critic.safetensors` from an assets folder.
    pub fn load(dir: &Path, device: &B::Device) -> Result<Self, Error> {
        let path = dir.join(CRITIC_FILE);
        if !path.is_file() {
            return Err(Error::Model(format!(
                "no critic weights at {} (set REFRAIN_ASSETS or --assets to the folder holding \
                 {CRITIC_FILE}, or use --think none)",
                path.display()
            )));
        }
        let (config, model) = CriticModel::load_safetensors(&path, device)?;
        let bytes = std::fs::read(&path)
            .map_err(|e| Error::Io(format!("reading {}", path.display()), e))?;
        Ok(LearnedCritic {
            model,
            config,
            device: device.clone(),
            entry: Some(ModelEntry {
                name: "critic".into(),
                file: CRITIC_FILE.into(),
                sha256: sha256_hex(&bytes),
            }),
        })
    }

    /// Calibrated probabilities `[OUTPUTS]` per candidate, all candidates with equal bars.
    pub fn probabilities(&self, candidates: &[Candidate]) -> Result<Vec<[f32; OUTPUTS]>, Error> {
        if candidates.is_empty() {
            return Ok(Vec::new());
        }
        let inputs: Vec<_> = candidates.iter().map(critic_input).collect();
        let batch = CriticBatch::new(&inputs.iter().collect::<Vec<_>>(), &self.device)?;
        let logits = self
            .model
            .forward(batch)
            .into_data()
            .to_vec::<f32>()
            .map_err(|e| Error::Model(format!("reading the critic's output: {e:?}")))?;
        let probabilities = self.config.probabilities(&logits);
        Ok(probabilities
            .chunks(OUTPUTS)
            .map(|c| c.try_into().expect("chunks of OUTPUTS"))
            .collect())
    }
}

/// A judgement from calibrated probabilities, with the reasons for its weakest aspects first.
pub fn judgement(candidate: &Candidate, probabilities: [f32; OUTPUTS]) -> Judgement {
    let mut aspects = [0f32; ASPECTS.len()];
    aspects.copy_from_slice(&probabilities[1..]);
    let sentences = reasons::aspect_reasons(candidate);
    let mut order: Vec<usize> = (0..ASPECTS.len()).collect();
    order.sort_by(|&a, &b| aspects[a].total_cmp(&aspects[b]));
    Judgement {
        overall: probabilities[0],
        aspects,
        reasons: order
            .into_iter()
            .map(|i| format!("{} {:.2}: {}", ASPECTS[i], aspects[i], sentences[i]))
            .collect(),
    }
}

impl<B: Backend> Critic for LearnedCritic<B> {
    fn judge(&mut self, candidates: &[Candidate]) -> Result<Vec<Judgement>, refrain_engine::Error> {
        let probabilities = self
            .probabilities(candidates)
            .map_err(|e| refrain_engine::Error::Model(e.to_string()))?;
        Ok(candidates
            .iter()
            .zip(probabilities)
            .map(|(c, p)| judgement(c, p))
            .collect())
    }

    fn models(&self) -> Vec<ModelEntry> {
        self.entry.iter().cloned().collect()
    }
}
