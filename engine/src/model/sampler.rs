//! Few-step ODE samplers for the DiT (rectified flow: `x_t = (1 - t) clean + t noise`, the
//! model predicts `noise - clean`), with classifier-free guidance, clean context tokens held
//! fixed, and the predicted clean window exposed after every step (what the critic scores).
//!
//! Noise is drawn from (seed, segment, attempt, particle) alone, so a segment can be redrawn
//! or a particle added without disturbing any other draw.

use super::batcher::Denoiser;
use super::conditions::{BarConditions, SONG_FIELDS, SongConditions};
use super::dit::{DitConfig, DitInput, TOKEN_FIELDS, TOKEN_OWN_FIELDS, field_tensors};
use crate::Error;
use burn::prelude::*;
use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;

/// One window to denoise: its conditions, and for every token (bar-major, `stems` per bar)
/// whether it is generated or given as clean context.
#[derive(Clone, Debug, PartialEq)]
pub struct Window {
    pub song: SongConditions,
    pub bars: Vec<BarConditions>,
    pub stems: usize,
    /// `tokens * latent_dim` normalised latents; only the context tokens' entries are read.
    pub context: Vec<f32>,
    /// Per token: true to generate, false for clean context.
    pub generate: Vec<bool>,
}

impl Window {
    pub fn tokens(&self) -> usize {
        self.bars.len() * self.stems
    }

    /// Token-level field indices (before table offsets), conditioned or with the guidance
    /// conditions (chords) dropped.
    pub fn token_fields(&self, dropped: bool) -> Vec<[u8; TOKEN_FIELDS]> {
        let mut out = Vec::with_capacity(self.tokens());
        for (position, bar) in self.bars.iter().enumerate() {
            let bar = if dropped { bar.dropped() } else { *bar };
            let bar_fields = bar.fields();
            for stem in 0..self.stems {
                let token = position * self.stems + stem;
                let mut fields = [0u8; TOKEN_FIELDS];
                fields[0] = u8::from(self.generate[token]);
                fields[1] = stem as u8;
                fields[2] = position as u8;
                fields[TOKEN_OWN_FIELDS..].copy_from_slice(&bar_fields);
                out.push(fields);
            }
        }
        out
    }

    pub fn song_fields(&self, dropped: bool) -> [u8; SONG_FIELDS] {
        if dropped {
            self.song.dropped().fields()
        } else {
            self.song.fields()
        }
    }
}

/// How to integrate the flow from noise to clean.
#[derive(Clone, Copy, Debug, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Method {
    /// One model evaluation per step.
    Euler,
    /// Two per step (the last step is Euler): second-order accurate.
    Heun,
}

/// Sampler settings.
#[derive(Clone, Copy, Debug, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct SamplerSettings {
    pub method: Method,
    pub steps: usize,
    /// Classifier-free guidance scale: 1 is conditioned only, above 1 pushes away from the
    /// dropped-condition prediction (costs a second evaluation per step).
    pub guidance: f32,
    /// Time shift: above 1 spends more steps at high noise, where the form is decided.
    pub shift: f32,
    /// Scale of the starting noise: below 1 starts nearer the data's mean and gives fewer,
    /// steadier choices (sampling at a lower temperature); 1 is the trained distribution.
    #[serde(default = "default_temperature")]
    pub temperature: f32,
    /// Threads a batch of windows is split over for each model evaluation (1: all on the
    /// caller's thread). The reasoning loop's particles are one batch; at these small shapes
    /// the CPU backend computes a batch on one core, so two halves on two threads take about
    /// half the time. Each window's values do not depend on how the batch is split.
    #[serde(default = "default_threads")]
    pub threads: usize,
}

fn default_threads() -> usize {
    2
}

fn default_temperature() -> f32 {
    1.0
}

impl Default for SamplerSettings {
    fn default() -> Self {
        SamplerSettings {
            method: Method::Euler,
            steps: 8,
            // Measured: guidance 2 and 3 gave no better scale fit or feature match than 1 on
            // 24 songs, at twice the cost (docs/MODEL_CARD.md).
            guidance: 1.0,
            shift: 1.0,
            temperature: default_temperature(),
            threads: default_threads(),
        }
    }
}

impl SamplerSettings {
    /// The times the integration visits, from 1 (noise) down to 0 (clean).
    pub fn times(&self) -> Vec<f32> {
        let steps = self.steps.max(1);
        (0..=steps)
            .map(|i| {
                let s = 1.0 - i as f32 / steps as f32;
                self.shift * s / (1.0 + (self.shift - 1.0) * s)
            })
            .collect()
    }

    /// Model evaluations per window (a guided evaluation counts twice).
    pub fn evaluations(&self) -> usize {
        let per_step = if self.guidance == 1.0 { 1 } else { 2 };
        let steps = self.steps.max(1);
        match self.method {
            Method::Euler => steps * per_step,
            Method::Heun => (2 * steps - 1) * per_step,
        }
    }
}

/// What an observer sees after each step.
pub struct StepView<'a> {
    /// 1-based step just taken, of `steps`.
    pub step: usize,
    pub steps: usize,
    /// Time reached (0 after the last step).
    pub time: f32,
    /// `[windows, tokens, latent_dim]`, normalised: the model's estimate of the clean windows
    /// (context tokens as given).
    pub predicted_clean: &'a [f32],
}

/// Turns noise into clean windows with a DiT.
pub trait Sampler {
    /// Denoises `windows` (all with the same token count) from `noise`
    /// (`windows * tokens * latent_dim` standard normal draws) and returns the clean
    /// normalised latents in the same layout. `observe` sees every step.
    fn sample<B: Backend>(
        &self,
        dit: &dyn Denoiser<B>,
        config: &DitConfig,
        windows: &[Window],
        noise: &[f32],
        device: &B::Device,
        observe: Option<&mut dyn FnMut(&StepView)>,
    ) -> Result<Vec<f32>, Error>;
}

/// The ODE sampler of [`SamplerSettings`].
#[derive(Clone, Copy, Debug, Default, PartialEq)]
pub struct FlowSampler {
    pub settings: SamplerSettings,
}

/// Everything constant across steps, as tensors.
struct Prepared<B: Backend> {
    token_fields: Tensor<B, 2, Int>,
    song_fields: Tensor<B, 2, Int>,
    /// Present when guiding: the same windows with the guidance conditions dropped.
    dropped: Option<(Tensor<B, 2, Int>, Tensor<B, 2, Int>)>,
    /// `[batch, tokens, 1]`: 1 where generated.
    generate: Tensor<B, 3>,
    /// `[batch, tokens, latent]`: the context (zero where generated).
    context: Tensor<B, 3>,
}

impl<B: Backend> Prepared<B> {
    /// Puts the clean context back into the context tokens of `x`.
    fn keep_context(&self, x: Tensor<B, 3>) -> Tensor<B, 3> {
        x * self.generate.clone() + self.context.clone()
    }

    /// The windows `start..start + count` of the batch (what the model reads of them).
    fn windows(&self, start: usize, count: usize) -> Prepared<B> {
        Prepared {
            token_fields: self.token_fields.clone().narrow(0, start, count),
            song_fields: self.song_fields.clone().narrow(0, start, count),
            dropped: self.dropped.as_ref().map(|(token, song)| {
                (
                    token.clone().narrow(0, start, count),
                    song.clone().narrow(0, start, count),
                )
            }),
            generate: self.generate.clone().narrow(0, start, count),
            context: self.context.clone().narrow(0, start, count),
        }
    }
}

impl FlowSampler {
    pub fn new(settings: SamplerSettings) -> Self {
        FlowSampler { settings }
    }

    /// The model's velocity for every window of `x`, the batch split over
    /// `settings.threads` threads.
    fn velocity<B: Backend>(
        &self,
        dit: &dyn Denoiser<B>,
        prepared: &Prepared<B>,
        x: Tensor<B, 3>,
        time: f32,
    ) -> Tensor<B, 3> {
        let batch = x.dims()[0];
        let parts = self.settings.threads.clamp(1, batch.max(1));
        if parts == 1 {
            return self.velocity_on_this_thread(dit, prepared, x, time);
        }
        let ranges: Vec<(usize, usize)> = (0..parts)
            .map(|i| {
                (
                    i * batch / parts,
                    (i + 1) * batch / parts - i * batch / parts,
                )
            })
            .collect();
        let pieces = std::thread::scope(|scope| {
            let spawned: Vec<_> = ranges[1..]
                .iter()
                .map(|&(start, count)| {
                    let (part, x) = (
                        prepared.windows(start, count),
                        x.clone().narrow(0, start, count),
                    );
                    scope.spawn(move || self.velocity_on_this_thread(dit, &part, x, time))
                })
                .collect();
            let (start, count) = ranges[0];
            let mut pieces = vec![self.velocity_on_this_thread(
                dit,
                &prepared.windows(start, count),
                x.clone().narrow(0, start, count),
                time,
            )];
            for handle in spawned {
                pieces.push(
                    handle
                        .join()
                        .unwrap_or_else(|panic| std::panic::resume_unwind(panic)),
                );
            }
            pieces
        });
        Tensor::cat(pieces, 0)
    }

    fn velocity_on_this_thread<B: Backend>(
        &self,
        dit: &dyn Denoiser<B>,
        prepared: &Prepared<B>,
        x: Tensor<B, 3>,
        time: f32,
    ) -> Tensor<B, 3> {
        let [batch, _, _] = x.dims();
        let device = x.device();
        match &prepared.dropped {
            None => dit.denoise(DitInput {
                tokens: x,
                token_fields: prepared.token_fields.clone(),
                song_fields: prepared.song_fields.clone(),
                time: Tensor::full([batch], time, &device),
            }),
            Some((token_dropped, song_dropped)) => {
                let both = dit.denoise(DitInput {
                    tokens: Tensor::cat(vec![x.clone(), x], 0),
                    token_fields: Tensor::cat(
                        vec![prepared.token_fields.clone(), token_dropped.clone()],
                        0,
                    ),
                    song_fields: Tensor::cat(
                        vec![prepared.song_fields.clone(), song_dropped.clone()],
                        0,
                    ),
                    time: Tensor::full([2 * batch], time, &device),
                });
                let conditioned = both.clone().narrow(0, 0, batch);
                let dropped = both.narrow(0, batch, batch);
                dropped.clone() + (conditioned - dropped) * self.settings.guidance
            }
        }
    }
}

impl Sampler for FlowSampler {
    fn sample<B: Backend>(
        &self,
        dit: &dyn Denoiser<B>,
        config: &DitConfig,
        windows: &[Window],
        noise: &[f32],
        device: &B::Device,
        mut observe: Option<&mut dyn FnMut(&StepView)>,
    ) -> Result<Vec<f32>, Error> {
        if windows.is_empty() {
            return Ok(Vec::new());
        }
        let mut denoising = Denoising::start(*self, dit, config, windows, noise, device)?;
        while !denoising.finished() {
            denoising.advance();
            if let Some(observe) = observe.as_deref_mut() {
                let values = denoising.predicted_clean()?;
                observe(&StepView {
                    step: denoising.steps_taken(),
                    steps: denoising.steps(),
                    time: denoising.time(),
                    predicted_clean: &values,
                });
            }
        }
        denoising.current()
    }
}

/// A batch of windows part-way through denoising, advanced one step at a time, so a search
/// (the reasoning loop) can look at every particle's predicted clean window between steps,
/// drop some and branch others.
pub struct Denoising<'a, B: Backend> {
    sampler: FlowSampler,
    dit: &'a dyn Denoiser<B>,
    prepared: Prepared<B>,
    /// `[batch, tokens, latent]` at `times[step]`.
    x: Tensor<B, 3>,
    /// The predicted clean windows of the last step taken.
    predicted_clean: Option<Tensor<B, 3>>,
    times: Vec<f32>,
    step: usize,
}

impl<'a, B: Backend> Denoising<'a, B> {
    /// Checks the windows and noise (as [`Sampler::sample`] takes them) and sets up step 0.
    pub fn start(
        sampler: FlowSampler,
        dit: &'a dyn Denoiser<B>,
        config: &DitConfig,
        windows: &[Window],
        noise: &[f32],
        device: &B::Device,
    ) -> Result<Self, Error> {
        let Some(first) = windows.first() else {
            return Err(Error::Model("nothing to denoise: no windows".into()));
        };
        let tokens = first.tokens();
        let latent = config.latent_dim;
        let batch = windows.len();
        if tokens == 0 || first.bars.len() > config.max_bars {
            return Err(Error::Model(format!(
                "a window of {} bars does not fit the DiT (1 to {} bars)",
                first.bars.len(),
                config.max_bars
            )));
        }
        for w in windows {
            if w.tokens() != tokens
                || w.generate.len() != tokens
                || w.context.len() != tokens * latent
                || w.stems != config.stems
            {
                return Err(Error::Model(
                    "windows sampled together must have the same shape".into(),
                ));
            }
        }
        if noise.len() != batch * tokens * latent {
            return Err(Error::Model(format!(
                "noise has {} values, the windows need {}",
                noise.len(),
                batch * tokens * latent
            )));
        }
        let fields = |dropped: bool| {
            let token: Vec<_> = windows
                .iter()
                .flat_map(|w| w.token_fields(dropped))
                .collect();
            let song: Vec<_> = windows.iter().map(|w| w.song_fields(dropped)).collect();
            field_tensors::<B>(config, &token, &song, device)
        };
        let (token_fields, song_fields) = fields(false);
        let generate: Vec<f32> = windows
            .iter()
            .flat_map(|w| w.generate.iter().map(|&g| if g { 1.0 } else { 0.0 }))
            .collect();
        let generate =
            Tensor::<B, 3>::from_data(TensorData::new(generate, [batch, tokens, 1]), device);
        let context: Vec<f32> = windows.iter().flat_map(|w| w.context.clone()).collect();
        let context =
            Tensor::<B, 3>::from_data(TensorData::new(context, [batch, tokens, latent]), device)
                * (generate.clone().neg() + 1.0);
        let prepared = Prepared {
            token_fields,
            song_fields,
            dropped: (sampler.settings.guidance != 1.0).then(|| fields(true)),
            generate,
            context,
        };
        let noise = Tensor::<B, 3>::from_data(
            TensorData::new(noise.to_vec(), [batch, tokens, latent]),
            device,
        ) * sampler.settings.temperature;
        let x = prepared.keep_context(noise);
        Ok(Denoising {
            sampler,
            dit,
            prepared,
            x,
            predicted_clean: None,
            times: sampler.settings.times(),
            step: 0,
        })
    }

    /// Steps in the whole integration.
    pub fn steps(&self) -> usize {
        self.times.len() - 1
    }

    /// Steps taken so far.
    pub fn steps_taken(&self) -> usize {
        self.step
    }

    /// Time reached (1 before the first step, 0 when finished).
    pub fn time(&self) -> f32 {
        self.times[self.step]
    }

    pub fn finished(&self) -> bool {
        self.step >= self.steps()
    }

    /// Windows in the batch.
    pub fn particles(&self) -> usize {
        self.x.dims()[0]
    }

    /// Takes one step (nothing once finished).
    pub fn advance(&mut self) {
        if self.finished() {
            return;
        }
        let (t, next) = (self.times[self.step], self.times[self.step + 1]);
        let x = self.x.clone();
        let v = self
            .sampler
            .velocity(self.dit, &self.prepared, x.clone(), t);
        let mut update = v.clone();
        if self.sampler.settings.method == Method::Heun && next > 0.0 {
            let guess = self
                .prepared
                .keep_context(x.clone() + v.clone() * (next - t));
            let v_next = self.sampler.velocity(self.dit, &self.prepared, guess, next);
            update = (v.clone() + v_next) * 0.5;
        }
        self.predicted_clean = Some(self.prepared.keep_context(x.clone() - v * t));
        self.x = self.prepared.keep_context(x + update * (next - t));
        self.step += 1;
    }

    /// `[particles, tokens, latent]`: the last step's estimate of the clean windows (the
    /// current state before the first step).
    pub fn predicted_clean(&self) -> Result<Vec<f32>, Error> {
        read(self.predicted_clean.as_ref().unwrap_or(&self.x).clone())
    }

    /// `[particles, tokens, latent]`: the current state; the sample once finished.
    pub fn current(&self) -> Result<Vec<f32>, Error> {
        read(self.x.clone())
    }

    /// Keeps the particles `parents` names, in that order (a parent may repeat). Every copy
    /// after a parent's first is branched: moved back onto the flow at the current time from
    /// the parent's predicted clean window with fresh noise from `branch_noise(copy)`, so
    /// copies go on to differ.
    pub fn select(
        &mut self,
        parents: &[usize],
        mut branch_noise: impl FnMut(usize) -> Vec<f32>,
    ) -> Result<(), Error> {
        let count = self.particles();
        if parents.is_empty() || parents.iter().any(|&p| p >= count) {
            return Err(Error::Model(format!(
                "cannot select particles {parents:?} of {count}"
            )));
        }
        let device = self.x.device();
        let [_, tokens, latent] = self.x.dims();
        let index = Tensor::<B, 1, Int>::from_data(
            TensorData::new(parents.iter().map(|&p| p as i64).collect(), [parents.len()]),
            &device,
        );
        let prepared = &mut self.prepared;
        prepared.token_fields = prepared.token_fields.clone().select(0, index.clone());
        prepared.song_fields = prepared.song_fields.clone().select(0, index.clone());
        if let Some((token, song)) = prepared.dropped.take() {
            prepared.dropped = Some((
                token.select(0, index.clone()),
                song.select(0, index.clone()),
            ));
        }
        prepared.generate = prepared.generate.clone().select(0, index.clone());
        prepared.context = prepared.context.clone().select(0, index.clone());
        let x = self.x.clone().select(0, index.clone());
        let clean = self
            .predicted_clean
            .take()
            .map(|c| c.select(0, index))
            .unwrap_or_else(|| x.clone());
        let t = self.time();
        let mut seen = vec![false; count];
        let mut rows = Vec::with_capacity(parents.len());
        for (copy, &parent) in parents.iter().enumerate() {
            let row = x.clone().narrow(0, copy, 1);
            if std::mem::replace(&mut seen[parent], true) {
                let noise = branch_noise(copy);
                if noise.len() != tokens * latent {
                    return Err(Error::Model(format!(
                        "branch noise has {} values, a particle needs {}",
                        noise.len(),
                        tokens * latent
                    )));
                }
                let noise =
                    Tensor::<B, 3>::from_data(TensorData::new(noise, [1, tokens, latent]), &device);
                rows.push(clean.clone().narrow(0, copy, 1) * (1.0 - t) + noise * t);
            } else {
                rows.push(row);
            }
        }
        self.x = self.prepared.keep_context(Tensor::cat(rows, 0));
        self.predicted_clean = Some(clean);
        Ok(())
    }
}

fn read<B: Backend>(tensor: Tensor<B, 3>) -> Result<Vec<f32>, Error> {
    tensor
        .into_data()
        .to_vec::<f32>()
        .map_err(|e| Error::Model(format!("reading the sampler's state: {e:?}")))
}

/// SplitMix64 finaliser.
fn mix(mut x: u64) -> u64 {
    x = x.wrapping_add(0x9e37_79b9_7f4a_7c15);
    x = (x ^ (x >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
    x = (x ^ (x >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
    x ^ (x >> 31)
}

/// `count` standard normal draws from (seed, segment, attempt, particle) alone.
pub fn window_noise(
    seed: u64,
    segment: u64,
    attempt: u64,
    particle: u64,
    count: usize,
) -> Vec<f32> {
    let key = mix(mix(mix(mix(seed) ^ segment) ^ attempt) ^ particle);
    let mut rng = ChaCha8Rng::seed_from_u64(key);
    let mut out = Vec::with_capacity(count + 1);
    while out.len() < count {
        // Box-Muller: two uniforms in (0, 1] give two independent normals.
        let u1: f64 = 1.0 - rng.random::<f64>();
        let u2: f64 = rng.random::<f64>();
        let radius = (-2.0 * u1.ln()).sqrt();
        let angle = std::f64::consts::TAU * u2;
        out.push((radius * angle.cos()) as f32);
        out.push((radius * angle.sin()) as f32);
    }
    out.truncate(count);
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::model::conditions::bar_conditions;
    use crate::music::{ChordTrack, Key, Meter, Mode, Mood, Style};
    use burn::backend::Flex;

    fn windows(config: &DitConfig, count: usize) -> Vec<Window> {
        let bars = bar_conditions(Meter::FourFour, 4, &[], &ChordTrack::default());
        let song = SongConditions::new(
            Style::Jazz,
            Mood::Calm,
            Key::new(2, Mode::Dorian),
            Meter::FourFour,
            96.0,
        );
        (0..count)
            .map(|i| {
                let tokens = 4 * config.stems;
                Window {
                    song,
                    bars: bars.clone(),
                    stems: config.stems,
                    context: vec![i as f32 + 0.5; tokens * config.latent_dim],
                    // The first bar is context.
                    generate: (0..tokens).map(|t| t >= config.stems).collect(),
                }
            })
            .collect()
    }

    /// A tiny DiT whose every weight (its zero-initialised output layer included) is drawn
    /// from a seed, so the flow actually moves.
    fn moving_dit(config: &DitConfig) -> crate::model::dit::Dit<Flex> {
        let device = Default::default();
        config
            .init_seeded::<Flex>(&device, 1)
            .map(&mut crate::model::autoencoder::SeededInit::new(
                ChaCha8Rng::seed_from_u64(5),
                device,
            ))
    }

    #[test]
    fn noise_depends_on_every_part_of_its_key_and_nothing_else() {
        let a = window_noise(1, 2, 3, 4, 1001);
        assert_eq!(a.len(), 1001);
        assert_eq!(a, window_noise(1, 2, 3, 4, 1001));
        assert_eq!(a[..10], window_noise(1, 2, 3, 4, 10)[..]);
        for other in [
            window_noise(9, 2, 3, 4, 1001),
            window_noise(1, 9, 3, 4, 1001),
            window_noise(1, 2, 9, 4, 1001),
            window_noise(1, 2, 3, 9, 1001),
        ] {
            assert_ne!(a, other);
        }
        let mean = a.iter().sum::<f32>() / a.len() as f32;
        let var = a.iter().map(|v| (v - mean).powi(2)).sum::<f32>() / a.len() as f32;
        assert!(mean.abs() < 0.1 && (var - 1.0).abs() < 0.15, "{mean} {var}");
    }

    #[test]
    fn times_run_from_noise_to_clean_and_evaluations_are_counted() {
        let mut settings = SamplerSettings {
            guidance: 2.0,
            ..SamplerSettings::default()
        };
        let times = settings.times();
        assert_eq!(times.len(), 9);
        assert_eq!((times[0], times[8]), (1.0, 0.0));
        assert!(times.windows(2).all(|w| w[0] > w[1]));
        assert_eq!(settings.evaluations(), 16);
        settings.shift = 3.0;
        assert!(settings.times()[4] > 0.5);
        settings.guidance = 1.0;
        settings.method = Method::Heun;
        assert_eq!(settings.evaluations(), 15);
    }

    #[test]
    fn temperature_scales_the_starting_noise() {
        let config = super::super::dit::tests::tiny();
        let device = Default::default();
        let dit = moving_dit(&config);
        let windows = windows(&config, 1);
        let count = windows[0].tokens() * config.latent_dim;
        let sample = |temperature: f32, noise_seed: u64| {
            FlowSampler::new(SamplerSettings {
                temperature,
                ..SamplerSettings::default()
            })
            .sample(
                &dit,
                &config,
                &windows,
                &window_noise(noise_seed, 0, 0, 0, count),
                &device,
                None,
            )
            .unwrap()
        };
        // At 0 every noise starts from the same point; at 1 the noise decides.
        assert_eq!(sample(0.0, 1), sample(0.0, 2));
        assert_ne!(sample(1.0, 1), sample(1.0, 2));
        assert_ne!(sample(0.5, 1), sample(1.0, 1));
    }

    #[test]
    fn sampling_keeps_context_is_deterministic_and_shows_every_step() {
        let config = super::super::dit::tests::tiny();
        let device = Default::default();
        let dit = moving_dit(&config);
        let windows = windows(&config, 2);
        let tokens = windows[0].tokens();
        let noise = window_noise(7, 0, 0, 0, 2 * tokens * config.latent_dim);
        for method in [Method::Euler, Method::Heun] {
            let sampler = FlowSampler::new(SamplerSettings {
                method,
                steps: 4,
                guidance: 1.5,
                shift: 1.0,
                temperature: 1.0,
                threads: 2,
            });
            let mut seen = Vec::new();
            let mut observe = |view: &StepView| seen.push((view.step, view.time));
            let out = sampler
                .sample(&dit, &config, &windows, &noise, &device, Some(&mut observe))
                .unwrap();
            assert_eq!(seen.len(), 4);
            assert_eq!(seen[3], (4, 0.0));
            assert_eq!(out.len(), noise.len());
            assert!(out.iter().all(|v| v.is_finite()));
            // Context tokens (the first bar of each window) come back exactly as given.
            let per_window = tokens * config.latent_dim;
            for (w, window) in windows.iter().enumerate() {
                let context = config.stems * config.latent_dim;
                assert_eq!(
                    out[w * per_window..w * per_window + context],
                    window.context[..context]
                );
                assert_ne!(
                    out[w * per_window + context..(w + 1) * per_window],
                    noise[w * per_window + context..(w + 1) * per_window]
                );
            }
            let again = sampler
                .sample(&dit, &config, &windows, &noise, &device, None)
                .unwrap();
            assert_eq!(out, again);
        }
    }

    #[test]
    fn selected_particles_continue_and_branched_copies_part_ways() {
        let config = super::super::dit::tests::tiny();
        let device = Default::default();
        let dit = moving_dit(&config);
        let windows = windows(&config, 2);
        let size = windows[0].tokens() * config.latent_dim;
        let noise = window_noise(7, 0, 0, 0, 2 * size);
        let sampler = FlowSampler::new(SamplerSettings {
            steps: 4,
            ..SamplerSettings::default()
        });
        let plain = sampler
            .sample(&dit, &config, &windows, &noise, &device, None)
            .unwrap();
        let mut denoising =
            Denoising::start(sampler, &dit, &config, &windows, &noise, &device).unwrap();
        denoising.advance();
        denoising.advance();
        // Particle 1 twice (the second a branch), particle 0 dropped.
        denoising
            .select(&[1, 1], |copy| window_noise(9, 0, 0, copy as u64, size))
            .unwrap();
        while !denoising.finished() {
            denoising.advance();
        }
        assert_eq!(denoising.steps_taken(), 4);
        let out = denoising.current().unwrap();
        assert_eq!(
            out[..size],
            plain[size..],
            "the first copy continues unchanged"
        );
        assert_ne!(out[size..], plain[size..], "the branch parts ways");
        assert!(denoising.select(&[2], |_| Vec::new()).is_err());
        assert!(denoising.select(&[0, 0], |_| vec![0.0; 3]).is_err());
    }

    #[test]
    fn a_batch_split_over_threads_gives_each_window_the_values_it_gets_alone() {
        let config = super::super::dit::tests::tiny();
        let device = Default::default();
        let dit = moving_dit(&config);
        let windows = windows(&config, 3);
        let size = windows[0].tokens() * config.latent_dim;
        let noise = window_noise(7, 0, 0, 0, 3 * size);
        let run = |threads: usize, guidance: f32| {
            FlowSampler::new(SamplerSettings {
                steps: 3,
                guidance,
                threads,
                ..SamplerSettings::default()
            })
            .sample(&dit, &config, &windows, &noise, &device, None)
            .unwrap()
        };
        for guidance in [1.0, 2.0] {
            let one = run(1, guidance);
            assert_eq!(one, run(2, guidance));
            assert_eq!(one, run(3, guidance));
            assert_eq!(one, run(8, guidance), "more threads than windows");
            let alone = FlowSampler::new(SamplerSettings {
                steps: 3,
                guidance,
                threads: 1,
                ..SamplerSettings::default()
            })
            .sample(
                &dit,
                &config,
                &windows[2..],
                &noise[2 * size..],
                &device,
                None,
            )
            .unwrap();
            assert_eq!(one[2 * size..], alone[..]);
        }
    }

    #[test]
    fn mismatched_windows_and_noise_are_errors() {
        let config = super::super::dit::tests::tiny();
        let device = Default::default();
        let dit = config.init_seeded::<Flex>(&device, 1);
        let sampler = FlowSampler::default();
        let mut windows = windows(&config, 2);
        let tokens = windows[0].tokens();
        assert!(
            sampler
                .sample(&dit, &config, &windows, &[0.0; 3], &device, None)
                .is_err()
        );
        windows[1].bars.pop();
        let noise = vec![0.0; 2 * tokens * config.latent_dim];
        assert!(
            sampler
                .sample(&dit, &config, &windows, &noise, &device, None)
                .is_err()
        );
    }
}
