//! The studio: the models, the instruments and the writer's settings, loaded once from the
//! flags that say how songs are made, and the one path from a request to a finished song.
//! `generate` makes one song with it and `batch` many, on one or more threads.

use crate::AudioArgs;
use crate::thinking::{Judges, ThinkArgs};
use anyhow::{Result, bail};
use clap::Args;
use refrain_engine::generate::{self, Generation};
use refrain_engine::model::sampler::SamplerSettings;
use refrain_engine::plan::Request;
use refrain_engine::reasoning::{Think, ThinkSettings};
use refrain_engine::render::Instruments;
use refrain_engine::writer::{self, CpuBackend, Models, WriterSettings};
use std::path::PathBuf;

/// How songs are made: the same flags for `generate` and `batch`.
#[derive(Args)]
pub struct StudioArgs {
    #[command(flatten)]
    pub audio: AudioArgs,
    /// Folder holding the model weights (autoencoder.safetensors, dit.safetensors); default
    /// $REFRAIN_ASSETS, else the repository's assets/.
    #[arg(long)]
    pub assets: Option<PathBuf>,
    /// Denoising steps per segment (more is slower and smoother).
    #[arg(long, default_value_t = 8, value_parser = clap::value_parser!(u32).range(1..=200))]
    pub steps: u32,
    /// Classifier-free guidance: 1 follows the conditions plainly, higher follows style,
    /// mood and chords more strictly (costs a second model pass per step).
    #[arg(long, default_value_t = 1.0)]
    pub guidance: f32,
    /// Sampling temperature, the scale of the starting noise: lower gives steadier, more
    /// repetitive parts and less variety between seeds; 1 samples the model as trained.
    #[arg(long, default_value_t = SamplerSettings::default().temperature)]
    pub temperature: f32,
    #[command(flatten)]
    pub thinking: ThinkArgs,
    /// Where the DiT runs: cpu, or cuda (an NVIDIA GPU; needs a refrain built with
    /// `--features cuda`). Everything else stays on the CPU. Only the CPU gives the same bytes
    /// on every machine.
    #[arg(long, value_enum, default_value_t = DitDevice::Cpu)]
    pub device: DitDevice,
}

/// `--device`.
#[derive(Clone, Copy, Debug, PartialEq, Eq, clap::ValueEnum)]
pub enum DitDevice {
    Cpu,
    Cuda,
}

/// Everything a song is made with except the judges (which the reasoning loop borrows
/// mutably, so each worker thread keeps its own): shared by every song of a run.
pub struct Studio {
    pub models: Models<CpuBackend>,
    pub instruments: Instruments,
    pub settings: WriterSettings,
    pub assets: PathBuf,
    args: StudioArgs,
}

impl Studio {
    /// Checks the flags and loads the models and the instruments.
    pub fn open(args: StudioArgs) -> Result<Studio> {
        if !(args.guidance.is_finite() && (0.0..=20.0).contains(&args.guidance)) {
            bail!("--guidance must be between 0 and 20");
        }
        if !(args.temperature.is_finite() && (0.0..=2.0).contains(&args.temperature)) {
            bail!("--temperature must be between 0 and 2");
        }
        let assets = args
            .assets
            .clone()
            .unwrap_or_else(writer::default_assets_dir);
        let mut models = Models::<CpuBackend>::load(&assets, &Default::default())?;
        if args.device == DitDevice::Cuda {
            offload_to_cuda(&mut models, &assets.join(writer::DIT_FILE))?;
        }
        let instruments = args.audio.instruments(&assets)?;
        let settings = WriterSettings {
            sampler: SamplerSettings {
                steps: args.steps as usize,
                guidance: args.guidance,
                temperature: args.temperature,
                ..SamplerSettings::default()
            },
            ..WriterSettings::default()
        };
        Ok(Studio {
            models,
            instruments,
            settings,
            assets,
            args,
        })
    }

    /// Batches DiT evaluations across the threads that make songs with this studio (each
    /// registers with the batcher); a song's own windows then stay on its thread.
    pub fn batch_across_songs(&mut self, linger: std::time::Duration, max_windows: usize) {
        self.models.batch_evaluations(linger, max_windows);
        self.settings.sampler.threads = 1;
    }

    /// The thinking level the flags ask for.
    pub fn think(&self) -> Think {
        self.args.thinking.think
    }

    /// Loads the critic (when `with_critic`) and the memorisation guard for one worker.
    pub fn judges(&self, with_critic: bool) -> Result<Judges> {
        ThinkArgs::load_judges(&self.assets, with_critic)
    }

    /// The loop's settings for a preset, with the flags' overrides, checked.
    pub fn think_settings(&self, think: Think, judges: &Judges) -> Result<ThinkSettings> {
        let settings = self.args.thinking.settings_for(think, judges);
        settings.check()?;
        Ok(settings)
    }

    /// Plans, writes and renders one request.
    pub fn make(
        &self,
        request: &Request,
        judges: &mut Judges,
        think: ThinkSettings,
    ) -> Result<Generation> {
        let options = self.args.audio.options(request.looped);
        let mut generation = generate::generate(
            request,
            &self.models,
            &self.settings,
            &mut judges.thinking(think),
            &options,
            &self.instruments,
        )?;
        generation.models.push(judges.guard_entry.clone());
        Ok(generation)
    }
}

/// Puts the DiT's evaluations on the first CUDA device.
#[cfg(feature = "cuda")]
fn offload_to_cuda(models: &mut Models<CpuBackend>, dit: &std::path::Path) -> Result<()> {
    use refrain_engine::model::OffloadedDit;
    let device = burn::backend::cuda::CudaDevice::default();
    let loaded = crate::backend::on_cuda("--device cuda", || {
        Ok(OffloadedDit::<burn::backend::Cuda>::load(dit, &device)?)
    })?;
    models.offload_dit(loaded);
    Ok(())
}

#[cfg(not(feature = "cuda"))]
fn offload_to_cuda(_: &mut Models<CpuBackend>, _: &std::path::Path) -> Result<()> {
    bail!(
        "--device cuda needs a refrain built with the cuda feature \
         (cargo build --release -p refrain --features cuda)"
    )
}
