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

/// The critic's verdict on one segment of a whole song.
#[derive(Clone, Debug, PartialEq, serde::Serialize)]
pub struct SegmentScore {
    /// Song bars judged as written, `[start, end)`.
    pub bars: [u32; 2],
    pub overall: f32,
    pub aspects: std::collections::BTreeMap<String, f32>,
    pub reasons: Vec<String>,
}

/// The critic's verdict on a whole song: the mean over its segments, and every segment.
#[derive(Clone, Debug, PartialEq, serde::Serialize)]
pub struct SongScore {
    pub overall: f32,
    pub aspects: std::collections::BTreeMap<String, f32>,
    /// The weakest segment's overall score.
    pub weakest: f32,
    pub segments: Vec<SegmentScore>,
}

impl<B: Backend> LearnedCritic<B> {
    /// Judges a whole song the way the writer builds it: a first window of `window` bars,
    /// then windows that keep the previous half as context and judge the rest.
    pub fn score_song(
        &self,
        song: &refrain_engine::music::Song,
        mood: refrain_engine::music::Mood,
        window: u32,
    ) -> Result<SongScore, Error> {
        if song.bars == 0 {
            return Err(Error::Model("the song has no bars to judge".into()));
        }
        let window = window.clamp(2, 16).min(song.bars);
        let hop = (window / 2).max(1);
        let mut candidates = Vec::new();
        let mut start = 0;
        let mut written_from = 0;
        loop {
            let end = (start + window).min(song.bars);
            let first = end.saturating_sub(window);
            candidates.push((
                Candidate {
                    song: song.excerpt(first..end),
                    mood,
                    written: written_from - first..end - first,
                },
                [written_from, end],
            ));
            if end == song.bars {
                break;
            }
            written_from = end;
            start += if start == 0 { window - hop } else { hop };
            start = start.max(written_from + hop - window);
        }
        let mut segments = Vec::new();
        // Windows cut near the end can be shorter; judge each length on its own.
        for (candidate, bars) in &candidates {
            let p = self.probabilities(std::slice::from_ref(candidate))?[0];
            let judged = judgement(candidate, p);
            segments.push(SegmentScore {
                bars: *bars,
                overall: judged.overall,
                aspects: ASPECTS
                    .iter()
                    .zip(judged.aspects)
                    .map(|(a, v)| (a.to_string(), v))
                    .collect(),
                reasons: judged.reasons,
            });
        }
        let n = segments.len() as f32;
        let mut aspects = std::collections::BTreeMap::new();
        for segment in &segments {
            for (a, v) in &segment.aspects {
                *aspects.entry(a.clone()).or_insert(0.0) += v / n;
            }
        }
        Ok(SongScore {
            overall: segments.iter().map(|s| s.overall).sum::<f32>() / n,
            aspects,
            weakest: segments.iter().map(|s| s.overall).fold(1.0, f32::min),
            segments,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use burn::backend::Flex;
    use refrain_engine::music::{Key, Meter, Mode, Mood, Note, Song, Stem, StemTrack, Style};

    fn song(bars: u32) -> Song {
        Song {
            style: Style::Folk,
            tempo_bpm: 100.0,
            meter: Meter::FourFour,
            key: Key::new(7, Mode::Major),
            bars,
            sections: Vec::new(),
            chords: Default::default(),
            stems: vec![StemTrack {
                stem: Stem::Lead,
                instrument: refrain_engine::music::Instrument::SubBass,
                notes: (0..bars * 4)
                    .map(|i| Note {
                        start: i * 4,
                        duration: 3,
                        pitch: [0, 2, 4, 7][i as usize % 4],
                        velocity: 80,
                    })
                    .collect(),
            }],
        }
    }

    #[test]
    fn a_song_is_judged_in_segments_that_tile_it_once() {
        let device = Default::default();
        let config = CriticConfig::new()
            .with_d_model(16)
            .with_layers(1)
            .with_heads(2);
        let critic = LearnedCritic::new(config.init_seeded::<Flex>(&device, 1), config, device);
        for bars in [1, 5, 8, 13, 30] {
            let score = critic.score_song(&song(bars), Mood::Calm, 8).unwrap();
            let mut next = 0;
            for segment in &score.segments {
                assert_eq!(segment.bars[0], next, "{bars}");
                assert!(segment.bars[1] > segment.bars[0]);
                assert!((0.0..=1.0).contains(&segment.overall));
                assert_eq!(segment.aspects.len(), ASPECTS.len());
                assert_eq!(segment.reasons.len(), ASPECTS.len());
                next = segment.bars[1];
            }
            assert_eq!(next, bars);
            assert!(score.weakest <= score.overall + 1e-6);
        }
        assert!(critic.score_song(&song(0), Mood::Calm, 8).is_err());
    }
}
