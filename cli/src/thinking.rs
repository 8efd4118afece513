//! The reasoning loop's flags (`--think` and its overrides), shared by the commands that
//! write songs, and the judges they load from the assets: the critic and the memorisation
//! guard.

use anyhow::{Context, Result};
use clap::Args;
use refrain_engine::generate::{ModelEntry, sha256_hex};
use refrain_engine::guard::{GUARD_FILE, MelodyIndex};
use refrain_engine::reasoning::{Think, ThinkSettings, Thinking};
use refrain_engine::writer::CpuBackend;
use refrain_scorer::LearnedCritic;
use std::path::Path;

#[derive(Args, Clone, Debug)]
pub struct ThinkArgs {
    /// How hard to think per segment: none (no critic; --candidates K draws K and keeps one
    /// at random, the equal-compute baseline), fast (2 candidates, judged once mid-way, 1
    /// retry), balanced (4 candidates judged at steps 3 and 6, weak half pruned and strong
    /// branched, 2 retries, may take back the previous segment once) or deep (8 candidates,
    /// 3 checkpoints, 3 retries, 2 backtracks).
    #[arg(long, default_value = "balanced", value_parser = parse_think)]
    pub think: Think,
    /// Candidates (particles) per segment, overriding the preset.
    #[arg(long, value_parser = clap::value_parser!(u32).range(1..=64))]
    pub candidates: Option<u32>,
    /// Denoising steps after which the critic judges, e.g. 3,6 (overriding the preset).
    #[arg(long, value_delimiter = ',')]
    pub checkpoints: Option<Vec<usize>>,
    /// Fresh attempts at a segment after its first fails (overriding the preset).
    #[arg(long)]
    pub retries: Option<u32>,
    /// Times a segment may take back the one before it (overriding the preset).
    #[arg(long)]
    pub backtracks: Option<u32>,
    /// Overall critic score a finished candidate needs (default: the critic's own, stored
    /// with its weights; docs/CRITIC.md). Higher is stricter: more retries and backtracks.
    #[arg(long)]
    pub threshold: Option<f32>,
}

fn parse_think(text: &str) -> Result<Think, String> {
    text.parse()
        .map_err(|e: refrain_engine::Error| e.to_string())
}

/// The critic and the guard, loaded once.
pub struct Judges {
    pub critic: Option<LearnedCritic<CpuBackend>>,
    pub guard: MelodyIndex,
    /// The guard's file with its hash, for manifests.
    pub guard_entry: ModelEntry,
}

impl ThinkArgs {
    /// The preset with the explicit overrides applied; the critic's own threshold.
    pub fn settings(&self, judges: &Judges) -> ThinkSettings {
        self.settings_for(self.think, judges)
    }

    /// Another preset (a batch line's own) with the explicit overrides applied.
    pub fn settings_for(&self, think: Think, judges: &Judges) -> ThinkSettings {
        let mut settings = think.settings();
        if let Some(k) = self.candidates {
            settings.particles = k as usize;
        }
        if let Some(checkpoints) = &self.checkpoints {
            settings.checkpoints = checkpoints.clone();
        }
        if let Some(retries) = self.retries {
            settings.retries = retries;
        }
        if let Some(backtracks) = self.backtracks {
            settings.backtracks = backtracks;
        }
        if let Some(critic) = &judges.critic {
            settings.threshold = critic.config.threshold;
        }
        if let Some(threshold) = self.threshold {
            settings.threshold = threshold;
        }
        settings
    }

    /// Loads the guard, and the critic unless thinking without one.
    pub fn judges(&self, assets: &Path) -> Result<Judges> {
        Self::load_judges(assets, self.think.settings().use_critic)
    }

    /// Loads the guard, and the critic when `with_critic`.
    pub fn load_judges(assets: &Path, with_critic: bool) -> Result<Judges> {
        let guard_path = assets.join(GUARD_FILE);
        let hint = || {
            format!(
                "loading the memorisation guard (build it with `refrain dataset guard --data \
                 DATASET --out {}`)",
                guard_path.display()
            )
        };
        let bytes = std::fs::read(&guard_path).with_context(hint)?;
        let guard_entry = ModelEntry {
            name: "memorisation guard (melody index)".into(),
            file: GUARD_FILE.into(),
            sha256: sha256_hex(&bytes),
        };
        let guard = MelodyIndex::from_bytes(&bytes).with_context(hint)?;
        let critic = if with_critic {
            Some(LearnedCritic::load(assets, &Default::default())?)
        } else {
            None
        };
        Ok(Judges {
            critic,
            guard,
            guard_entry,
        })
    }
}

impl Judges {
    /// The loop's settings and judges for one song.
    pub fn thinking<'a>(&'a mut self, settings: ThinkSettings) -> Thinking<'a> {
        Thinking {
            settings,
            critic: self
                .critic
                .as_mut()
                .map(|c| c as &mut dyn refrain_engine::critic::Critic),
            guard: Some(&self.guard),
        }
    }
}
