//! The diffusion transformer: denoises the latent tokens of a window of bars (one token per
//! stem per bar, bar-major) under rectified flow, predicting the velocity `noise - clean`.
//!
//! - Tokens: the latent (normalised per dimension with the training set's statistics) through
//!   a linear layer, plus one embedding per token-level field: whether the token is clean
//!   context or to be generated, its stem, its bar's place in the window, and the bar's
//!   conditions (section, place in it, energy, place in the song, chord on every beat).
//!   Clean context tokens enter as they are, so continuation, infilling, extension and loop
//!   wrap-around are all one mechanism: which tokens are marked context.
//! - Blocks: pre-norm attention over all tokens of the window and an MLP, each modulated by
//!   adaLN-Zero (shift, scale and a gate that starts at zero) from the song-wide conditions
//!   and the diffusion time.
//! - Output: the predicted velocity for every token (the loss and the sampler ignore context).

use super::autoencoder::SeededInit;
use super::conditions::{BAR_FIELDS, BAR_VOCABULARY, SONG_FIELDS, SONG_VOCABULARY};
use super::playing::Playing;
use crate::Error;
use crate::harmony::Labelling;
use crate::music::{DrumClass, Stem, Style};
use burn::module::Module;
use burn::nn::{Embedding, EmbeddingConfig, Initializer, Linear, LinearConfig};
use burn::prelude::*;
use burn::store::{ModuleSnapshot, SafetensorsStore};
use burn::tensor::activation::{gelu, silu};
use burn::tensor::module::attention;
use burn::tensor::ops::AttentionModuleOptions;
use rand::SeedableRng;
use rand_chacha::ChaCha8Rng;
use std::path::Path;

/// Token-level fields before the bar's own: role (context or generated), stem, bar in window.
pub const TOKEN_OWN_FIELDS: usize = 3;
/// All token-level fields.
pub const TOKEN_FIELDS: usize = TOKEN_OWN_FIELDS + BAR_FIELDS;
/// Width of the sinusoidal time features.
const TIME_FEATURES: usize = 128;

/// Configuration of a [`Dit`].
#[derive(Config, Debug, PartialEq)]
pub struct DitConfig {
    /// Size of one latent token (the bar autoencoder's `latent_dim`).
    #[config(default = 48)]
    pub latent_dim: usize,
    #[config(default = 192)]
    pub d_model: usize,
    #[config(default = 6)]
    pub layers: usize,
    #[config(default = 6)]
    pub heads: usize,
    /// MLP width as a multiple of `d_model`.
    #[config(default = 4)]
    pub mlp_ratio: usize,
    /// Longest window in bars.
    #[config(default = 16)]
    pub max_bars: usize,
    #[config(default = 5)]
    pub stems: usize,
    /// Per-dimension mean and standard deviation of the autoencoder's latents over the
    /// training set: tokens are `(latent - mean) / std`. Empty means identity.
    #[config(default = "Vec::new()")]
    pub latent_mean: Vec<f32>,
    #[config(default = "Vec::new()")]
    pub latent_std: Vec<f32>,
    /// Per stem (in `Stem::ALL` order), what is added to the decoder's onset logits when
    /// decoding this DiT's samples, fitted by `refrain train calibrate` so sampled bars carry
    /// as many notes as real ones (the decoder alone is calibrated on real latents). Empty
    /// means none.
    #[config(default = "Vec::new()")]
    pub onset_shift: Vec<f32>,
    /// The same per style: `Style::ALL.len() * stems` entries, style-major; where present it
    /// is used instead of `onset_shift` for songs of a known style. Empty means none.
    #[config(default = "Vec::new()")]
    pub onset_shift_by_style: Vec<f32>,
    /// Per style and stem (`Style::ALL.len() * stems` entries, style-major), the lift in
    /// logits a bar's onset gets where the bar before had one (and loses where it had none),
    /// fitted by `refrain train calibrate` beside the shift (see [`crate::model::rhythm`]).
    /// Empty means none.
    #[config(default = "Vec::new()")]
    pub rhythm_lift_by_style: Vec<f32>,
    /// Per style and drum class (`Style::ALL.len() * DrumClass::ALL.len()` entries,
    /// style-major), what is added to the drum stem's onset logits on that class's row, on
    /// top of the stem's shift; fitted by `refrain train calibrate` on whole written songs so
    /// each class plays as often as in the style's training pieces. Empty means none.
    #[config(default = "Vec::new()")]
    pub drum_shift_by_style: Vec<f32>,
    /// Per style and stem (`Style::ALL.len() * stems` entries, style-major), whether the
    /// stem is a single line in that style's training pieces, counted by `refrain train
    /// calibrate` (see [`crate::model::playing`]). Empty means the bass and the lead only.
    #[config(default = "Vec::new()")]
    pub single_line_by_style: Vec<bool>,
    /// Likewise, whether the notes the stem strikes together end together. Empty means none.
    #[config(default = "Vec::new()")]
    pub strikes_end_together_by_style: Vec<bool>,
    /// Likewise, whether every note of the stem ends by its next onset step. Empty means none.
    #[config(default = "Vec::new()")]
    pub strikes_in_turn_by_style: Vec<bool>,
    /// Likewise, how many notes each onset step of the stem holds where that number is fixed
    /// (0: not fixed). Empty means none.
    #[config(default = "Vec::new()")]
    pub voices_by_style: Vec<u8>,
    /// Per style (`Style::ALL` order), how the chord labeller labels the plans this DiT is
    /// told (see [`crate::plan::corpus_harmony`]), fitted by `refrain train calibrate` on
    /// the training pieces so that the plans' chords vary and change as the pieces' do.
    /// Empty means the corpus's own labelling for every style.
    #[config(default = "Vec::new()")]
    pub plan_labelling_by_style: Vec<Labelling>,
}

impl DitConfig {
    fn token_vocabulary(&self) -> Vec<usize> {
        let mut sizes = vec![2, self.stems, self.max_bars];
        sizes.extend(BAR_VOCABULARY);
        sizes
    }

    /// Offsets of each token-level field in the shared token table, and the table's size.
    pub fn token_offsets(&self) -> (Vec<usize>, usize) {
        offsets(&self.token_vocabulary())
    }

    /// Offsets of each song-level field in the shared song table, and the table's size.
    pub fn song_offsets(&self) -> (Vec<usize>, usize) {
        offsets(&SONG_VOCABULARY)
    }

    /// Builds the model with weights drawn from a stream seeded by `seed` (the same on every
    /// backend), the adaLN modulations and the output layer zero (adaLN-Zero: every block
    /// starts as the identity and the first prediction is zero velocity).
    pub fn init_seeded<B: Backend>(&self, device: &B::Device, seed: u64) -> Dit<B> {
        let model = self.init_shape::<B>(device);
        let mut model = model.map(&mut SeededInit::new(
            ChaCha8Rng::seed_from_u64(seed),
            device.clone(),
        ));
        let zero = |d_in: usize, d_out: usize| {
            LinearConfig::new(d_in, d_out)
                .with_initializer(Initializer::Zeros)
                .init(device)
        };
        let d = self.d_model;
        for block in &mut model.blocks {
            block.modulation = zero(d, 6 * d);
        }
        model.final_modulation = zero(d, 2 * d);
        model.latent_out = zero(d, self.latent_dim);
        model
    }

    fn init_shape<B: Backend>(&self, device: &B::Device) -> Dit<B> {
        let d = self.d_model;
        let (_, token_table) = self.token_offsets();
        let (_, song_table) = self.song_offsets();
        Dit {
            latent_in: LinearConfig::new(self.latent_dim, d).init(device),
            token_table: EmbeddingConfig::new(token_table, d).init(device),
            song_table: EmbeddingConfig::new(song_table, d).init(device),
            time_in: LinearConfig::new(2 * TIME_FEATURES, d).init(device),
            time_out: LinearConfig::new(d, d).init(device),
            blocks: (0..self.layers)
                .map(|_| DitBlock {
                    modulation: LinearConfig::new(d, 6 * d).init(device),
                    qkv: LinearConfig::new(d, 3 * d).init(device),
                    attention_out: LinearConfig::new(d, d).init(device),
                    mlp_in: LinearConfig::new(d, self.mlp_ratio * d).init(device),
                    mlp_out: LinearConfig::new(self.mlp_ratio * d, d).init(device),
                })
                .collect(),
            final_modulation: LinearConfig::new(d, 2 * d).init(device),
            latent_out: LinearConfig::new(d, self.latent_dim).init(device),
            heads: self.heads,
            d_model: d,
        }
    }

    /// Checks the config can be built and used.
    pub fn validate(&self) -> Result<(), Error> {
        let bad = |why: String| Err(Error::Model(format!("DiT config: {why}")));
        if self.d_model == 0 || self.heads == 0 || !self.d_model.is_multiple_of(self.heads) {
            return bad(format!(
                "d_model {} must be a positive multiple of heads {}",
                self.d_model, self.heads
            ));
        }
        if !self.latent_mean.is_empty()
            && (self.latent_mean.len() != self.latent_dim
                || self.latent_std.len() != self.latent_dim
                || self.latent_std.iter().any(|&s| !(s > 0.0 && s.is_finite())))
        {
            return bad("latent statistics must have latent_dim finite entries, std > 0".into());
        }
        if !self.onset_shift.is_empty()
            && (self.onset_shift.len() != self.stems
                || self.onset_shift.iter().any(|s| !s.is_finite()))
        {
            return bad("onset_shift must have one finite entry per stem".into());
        }
        if !self.onset_shift_by_style.is_empty()
            && (self.onset_shift_by_style.len() != Style::ALL.len() * self.stems
                || self.onset_shift_by_style.iter().any(|s| !s.is_finite()))
        {
            return bad(
                "onset_shift_by_style must have one finite entry per style and stem".into(),
            );
        }
        if !self.rhythm_lift_by_style.is_empty()
            && (self.rhythm_lift_by_style.len() != Style::ALL.len() * self.stems
                || self
                    .rhythm_lift_by_style
                    .iter()
                    .any(|l| !(0.0..=100.0).contains(l)))
        {
            return bad(
                "rhythm_lift_by_style must have one entry from 0 to 100 per style and stem".into(),
            );
        }
        if !self.drum_shift_by_style.is_empty()
            && (self.drum_shift_by_style.len() != Style::ALL.len() * DrumClass::ALL.len()
                || self.drum_shift_by_style.iter().any(|s| !s.is_finite()))
        {
            return bad(
                "drum_shift_by_style must have one finite entry per style and drum class".into(),
            );
        }
        if !self.plan_labelling_by_style.is_empty()
            && (self.plan_labelling_by_style.len() != Style::ALL.len()
                || self.plan_labelling_by_style.iter().any(|l| !l.is_valid()))
        {
            return bad(
                "plan_labelling_by_style must have one entry per style, each weight finite \
                 and >= 0"
                    .into(),
            );
        }
        for (name, entries) in [
            ("single_line_by_style", self.single_line_by_style.len()),
            (
                "strikes_end_together_by_style",
                self.strikes_end_together_by_style.len(),
            ),
            (
                "strikes_in_turn_by_style",
                self.strikes_in_turn_by_style.len(),
            ),
            ("voices_by_style", self.voices_by_style.len()),
        ] {
            if entries != 0 && entries != Style::ALL.len() * self.stems {
                return bad(format!("{name} must have one entry per style and stem"));
            }
        }
        Ok(())
    }

    /// The onset logit shift for stem number `stem` in a song of `style`: the style's own
    /// where calibrated per style, else the shared one (0 when not calibrated).
    pub fn onset_shift_of(&self, style: Style, stem: usize) -> f32 {
        match self
            .by_style_index(style, stem)
            .and_then(|i| self.onset_shift_by_style.get(i))
        {
            Some(&shift) => shift,
            None => self.onset_shift.get(stem).copied().unwrap_or(0.0),
        }
    }

    /// Where stem number `stem` of `style` sits in a `*_by_style` entry list (style-major);
    /// `None` for a stem this DiT does not have.
    fn by_style_index(&self, style: Style, stem: usize) -> Option<usize> {
        (stem < self.stems).then_some(style.number() * self.stems + stem)
    }

    /// The bar-to-bar rhythm lift for stem number `stem` in a song of `style` (0 when not
    /// calibrated).
    pub fn rhythm_lift_of(&self, style: Style, stem: usize) -> f32 {
        self.by_style_index(style, stem)
            .and_then(|i| self.rhythm_lift_by_style.get(i))
            .copied()
            .unwrap_or(0.0)
    }

    /// The onset logit shift of drum class number `class` (its row of the drum stem) in a
    /// song of `style`, on top of the stem's (0 when not calibrated).
    pub fn drum_shift_of(&self, style: Style, class: usize) -> f32 {
        if class >= DrumClass::ALL.len() {
            return 0.0;
        }
        self.drum_shift_by_style
            .get(style.number() * DrumClass::ALL.len() + class)
            .copied()
            .unwrap_or(0.0)
    }

    /// Stores how each style plays each stem (`Style::ALL.len() * stems` entries, style-major,
    /// as [`Self::playing_of`] reads them); an empty slice clears it (bass and lead single
    /// lines only).
    pub fn set_playing(&mut self, playing: &[Playing]) {
        self.single_line_by_style = playing.iter().map(|p| p.single_line).collect();
        self.strikes_end_together_by_style =
            playing.iter().map(|p| p.strikes_end_together).collect();
        self.strikes_in_turn_by_style = playing.iter().map(|p| p.strikes_in_turn).collect();
        self.voices_by_style = playing.iter().map(|p| p.voices).collect();
    }

    /// How stem number `stem` is played in a song of `style` (see [`crate::model::playing`]):
    /// as counted by calibration, else the bass and the lead as single lines.
    pub fn playing_of(&self, style: Style, stem: usize) -> Playing {
        fn entry<T: Copy>(entries: &[T], index: Option<usize>, otherwise: T) -> T {
            index
                .and_then(|i| entries.get(i))
                .copied()
                .unwrap_or(otherwise)
        }
        let index = self.by_style_index(style, stem);
        let bass_or_lead = matches!(Stem::ALL.get(stem), Some(Stem::Bass | Stem::Lead));
        Playing {
            single_line: entry(&self.single_line_by_style, index, bass_or_lead),
            strikes_end_together: entry(&self.strikes_end_together_by_style, index, false),
            strikes_in_turn: entry(&self.strikes_in_turn_by_style, index, false),
            voices: entry(&self.voices_by_style, index, 0),
        }
    }

    /// `(latent - mean) / std` in place (identity when no statistics are set).
    pub fn normalise(&self, latents: &mut [f32]) {
        if self.latent_mean.is_empty() {
            return;
        }
        for chunk in latents.chunks_mut(self.latent_dim) {
            for ((v, m), s) in chunk
                .iter_mut()
                .zip(&self.latent_mean)
                .zip(&self.latent_std)
            {
                *v = (*v - m) / s;
            }
        }
    }

    /// The inverse of [`Self::normalise`].
    pub fn denormalise(&self, tokens: &mut [f32]) {
        if self.latent_mean.is_empty() {
            return;
        }
        for chunk in tokens.chunks_mut(self.latent_dim) {
            for ((v, m), s) in chunk
                .iter_mut()
                .zip(&self.latent_mean)
                .zip(&self.latent_std)
            {
                *v = *v * s + m;
            }
        }
    }
}

fn offsets(sizes: &[usize]) -> (Vec<usize>, usize) {
    let mut offsets = Vec::with_capacity(sizes.len());
    let mut total = 0;
    for size in sizes {
        offsets.push(total);
        total += size;
    }
    (offsets, total)
}

/// One transformer block with adaLN-Zero modulation.
#[derive(Module, Debug)]
pub struct DitBlock<B: Backend> {
    modulation: Linear<B>,
    qkv: Linear<B>,
    attention_out: Linear<B>,
    mlp_in: Linear<B>,
    mlp_out: Linear<B>,
}

/// The inputs of one forward pass over a batch of windows.
#[derive(Clone, Debug)]
pub struct DitInput<B: Backend> {
    /// `[batch, tokens, latent_dim]`: noisy tokens to generate, clean context tokens.
    pub tokens: Tensor<B, 3>,
    /// `[batch, tokens * TOKEN_FIELDS]`: token-level field indices, already offset into the
    /// shared table (see [`DitConfig::token_offsets`]).
    pub token_fields: Tensor<B, 2, Int>,
    /// `[batch, SONG_FIELDS]`: song-level field indices, offset likewise.
    pub song_fields: Tensor<B, 2, Int>,
    /// `[batch]`: diffusion time in 0..=1 (1 is pure noise).
    pub time: Tensor<B, 1>,
}

/// The diffusion transformer; see the module documentation.
#[derive(Module, Debug)]
pub struct Dit<B: Backend> {
    latent_in: Linear<B>,
    token_table: Embedding<B>,
    song_table: Embedding<B>,
    time_in: Linear<B>,
    time_out: Linear<B>,
    blocks: Vec<DitBlock<B>>,
    final_modulation: Linear<B>,
    latent_out: Linear<B>,
    heads: usize,
    d_model: usize,
}

/// Multi-head self-attention over all tokens of each window: `qkv` projects `h` to queries,
/// keys and values; the heads' outputs come back concatenated.
///
/// # Shapes
/// - `h`: `[batch, tokens, d]`; output `[batch, tokens, d]`
pub fn self_attention<B: Backend>(qkv: &Linear<B>, h: Tensor<B, 3>, heads: usize) -> Tensor<B, 3> {
    let [batch, tokens, d] = h.dims();
    let qkv = qkv
        .forward(h)
        .reshape([batch, tokens, 3, heads, d / heads])
        .permute([2, 0, 3, 1, 4]);
    let q = qkv.clone().narrow(0, 0, 1).squeeze_dim::<4>(0);
    let k = qkv.clone().narrow(0, 1, 1).squeeze_dim::<4>(0);
    let v = qkv.narrow(0, 2, 1).squeeze_dim::<4>(0);
    attention(q, k, v, None, None, AttentionModuleOptions::default())
        .swap_dims(1, 2)
        .reshape([batch, tokens, d])
}

/// Layer norm over the last dimension without learned affine terms (adaLN supplies them).
pub fn norm<B: Backend>(x: Tensor<B, 3>) -> Tensor<B, 3> {
    let mean = x.clone().mean_dim(2);
    let centred = x - mean;
    let variance = centred.clone().powi_scalar(2).mean_dim(2);
    centred / (variance + 1e-6).sqrt()
}

/// Multi-head self-attention as [`self_attention`], over token-major `h`: `[tokens, batch,
/// d]` in and out.
fn self_attention_token_major<B: Backend>(
    qkv: &Linear<B>,
    h: Tensor<B, 3>,
    heads: usize,
) -> Tensor<B, 3> {
    let [tokens, batch, d] = h.dims();
    let qkv = qkv
        .forward(h)
        .reshape([tokens, batch, 3, heads, d / heads])
        .permute([2, 1, 3, 0, 4]);
    let q = qkv.clone().narrow(0, 0, 1).squeeze_dim::<4>(0);
    let k = qkv.clone().narrow(0, 1, 1).squeeze_dim::<4>(0);
    let v = qkv.narrow(0, 2, 1).squeeze_dim::<4>(0);
    attention(q, k, v, None, None, AttentionModuleOptions::default())
        .permute([2, 0, 1, 3])
        .reshape([tokens, batch, d])
}

/// `x * p` (or `x + p`) for token-major `x` (`[tokens, batch, d]`) and one row `p` per window
/// (`[batch, d]`). Seen as `[tokens, batch * d]` against one `[1, batch * d]` row, every
/// token shares the same row: the broadcast CPU backends run fastest. (`[batch, tokens, d]`
/// against `[batch, 1, d]` is a strided broadcast that costs several times more once a batch
/// holds more than one window.)
fn per_window<B: Backend>(
    x: Tensor<B, 3>,
    p: Tensor<B, 2>,
    op: fn(Tensor<B, 2>, Tensor<B, 2>) -> Tensor<B, 2>,
) -> Tensor<B, 3> {
    let [tokens, batch, d] = x.dims();
    op(x.reshape([tokens, batch * d]), p.reshape([1, batch * d])).reshape([tokens, batch, d])
}

/// `norm(x) * (1 + scale) + shift` with per-window `shift` and `scale` of shape `[batch, d]`,
/// `x` token-major (`[tokens, batch, d]`).
fn modulate<B: Backend>(x: Tensor<B, 3>, shift: Tensor<B, 2>, scale: Tensor<B, 2>) -> Tensor<B, 3> {
    let scaled = per_window(norm(x), scale + 1.0, |a, b| a * b);
    per_window(scaled, shift, |a, b| a + b)
}

impl<B: Backend> DitBlock<B> {
    fn forward(&self, x: Tensor<B, 3>, condition: Tensor<B, 2>, heads: usize) -> Tensor<B, 3> {
        let parts = self.modulation.forward(condition).chunk(6, 1);
        let [shift_a, scale_a, gate_a, shift_m, scale_m, gate_m]: [Tensor<B, 2>; 6] =
            parts.try_into().expect("chunk(6) gives six parts");
        let h = modulate(x.clone(), shift_a, scale_a);
        let context = self_attention_token_major(&self.qkv, h, heads);
        let x = x + per_window(self.attention_out.forward(context), gate_a, |a, b| a * b);
        let h = modulate(x.clone(), shift_m, scale_m);
        let h = self.mlp_out.forward(gelu(self.mlp_in.forward(h)));
        x + per_window(h, gate_m, |a, b| a * b)
    }
}

impl<B: Backend> Dit<B> {
    /// Predicts the rectified-flow velocity (`noise - clean`) of every token.
    ///
    /// # Shapes
    /// - see [`DitInput`]; output `[batch, tokens, latent_dim]`
    pub fn forward(&self, input: DitInput<B>) -> Tensor<B, 3> {
        let [batch, tokens, _] = input.tokens.dims();
        let d = self.d_model;
        let fields = self
            .token_table
            .forward(input.token_fields)
            .reshape([batch, tokens, TOKEN_FIELDS, d])
            .sum_dim(2)
            .reshape([batch, tokens, d]);
        // The blocks run token-major (`[tokens, batch, d]`); see `per_window`.
        let mut x = (self.latent_in.forward(input.tokens) + fields)
            .swap_dims(0, 1)
            .reshape([tokens, batch * d])
            .reshape([tokens, batch, d]);
        let song = self
            .song_table
            .forward(input.song_fields)
            .sum_dim(1)
            .reshape([batch, d]);
        let time = self
            .time_out
            .forward(silu(self.time_in.forward(time_features(input.time))));
        let condition = silu(song + time);
        for block in &self.blocks {
            x = block.forward(x, condition.clone(), self.heads);
        }
        let [shift, scale]: [Tensor<B, 2>; 2] = self
            .final_modulation
            .forward(condition)
            .chunk(2, 1)
            .try_into()
            .expect("chunk(2) gives two parts");
        let latent = self.latent_out.forward(modulate(x, shift, scale));
        let latent_dim = latent.dims()[2];
        latent
            .swap_dims(0, 1)
            .reshape([batch * tokens, latent_dim])
            .reshape([batch, tokens, latent_dim])
    }

    /// Writes the weights as one safetensors file with the config in its metadata, so the file
    /// alone is enough to load the model ([`Self::load_safetensors`]).
    pub fn save_safetensors(&self, config: &DitConfig, path: &Path) -> Result<(), Error> {
        super::save_safetensors(self, "dit", config.to_string(), path)
    }

    /// Loads a file written by [`Self::save_safetensors`]: config from its metadata, then
    /// the weights.
    pub fn load_safetensors(path: &Path, device: &B::Device) -> Result<(DitConfig, Dit<B>), Error> {
        let config = super::read_config(path, "dit", DitConfig::new())?;
        config.validate()?;
        let mut model = config.init_shape::<B>(device);
        let mut store = SafetensorsStore::from_file(path);
        let result = model
            .load_from(&mut store)
            .map_err(|e| Error::Model(format!("reading {}: {e}", path.display())))?;
        if !result.missing.is_empty() || !result.errors.is_empty() {
            return Err(Error::Model(format!(
                "{} does not fit its own DiT config: missing {:?}, errors {:?}",
                path.display(),
                result.missing,
                result.errors
            )));
        }
        Ok((config, model))
    }
}

/// Sinusoidal features of the diffusion time: `[batch] -> [batch, 2 * TIME_FEATURES]`.
fn time_features<B: Backend>(time: Tensor<B, 1>) -> Tensor<B, 2> {
    let device = time.device();
    let frequencies: Vec<f32> = (0..TIME_FEATURES)
        .map(|i| (-(10_000f32.ln()) * i as f32 / TIME_FEATURES as f32).exp() * 1000.0)
        .collect();
    let frequencies =
        Tensor::<B, 1>::from_data(TensorData::new(frequencies, [TIME_FEATURES]), &device);
    let angles = time.unsqueeze_dim::<2>(1) * frequencies.unsqueeze_dim::<2>(0);
    Tensor::cat(vec![angles.clone().sin(), angles.cos()], 1)
}

/// The index tensors of a batch of windows, offsets applied.
pub fn field_tensors<B: Backend>(
    config: &DitConfig,
    token_fields: &[[u8; TOKEN_FIELDS]],
    song_fields: &[[u8; SONG_FIELDS]],
    device: &B::Device,
) -> (Tensor<B, 2, Int>, Tensor<B, 2, Int>) {
    let batch = song_fields.len().max(1);
    let (token_offsets, _) = config.token_offsets();
    let (song_offsets, _) = config.song_offsets();
    let tokens: Vec<i64> = token_fields
        .iter()
        .flat_map(|f| {
            f.iter()
                .zip(&token_offsets)
                .map(|(&v, &o)| (v as usize + o) as i64)
        })
        .collect();
    let songs: Vec<i64> = song_fields
        .iter()
        .flat_map(|f| {
            f.iter()
                .zip(&song_offsets)
                .map(|(&v, &o)| (v as usize + o) as i64)
        })
        .collect();
    let per_window = tokens.len() / batch;
    (
        Tensor::from_data(TensorData::new(tokens, [batch, per_window]), device),
        Tensor::from_data(TensorData::new(songs, [batch, SONG_FIELDS]), device),
    )
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;
    use burn::backend::Flex;

    pub(crate) fn tiny() -> DitConfig {
        DitConfig::new()
            .with_latent_dim(8)
            .with_d_model(16)
            .with_layers(2)
            .with_heads(2)
            .with_max_bars(4)
    }

    fn input(config: &DitConfig, batch: usize, tokens: usize) -> DitInput<Flex> {
        let device = Default::default();
        let token_fields = vec![[1u8; TOKEN_FIELDS]; batch * tokens];
        let song_fields = vec![[1u8; SONG_FIELDS]; batch];
        let (token_fields, song_fields) =
            field_tensors::<Flex>(config, &token_fields, &song_fields, &device);
        DitInput {
            tokens: Tensor::ones([batch, tokens, config.latent_dim], &device),
            token_fields,
            song_fields,
            time: Tensor::ones([batch], &device) * 0.5,
        }
    }

    #[test]
    fn a_fresh_model_predicts_zero_and_has_the_documented_shape() {
        let config = tiny();
        let model = config.init_seeded::<Flex>(&Default::default(), 3);
        let out = model.forward(input(&config, 2, 10));
        assert_eq!(out.dims(), [2, 10, 8]);
        let max: f32 = out.abs().max().into_scalar();
        assert_eq!(max, 0.0, "adaLN-Zero: the output layer starts at zero");
    }

    #[test]
    fn weights_and_config_round_trip_through_one_safetensors_file() {
        let config = tiny()
            .with_latent_mean(vec![0.5; 8])
            .with_latent_std(vec![2.0; 8]);
        let device = Default::default();
        let mut model = config.init_seeded::<Flex>(&device, 3);
        // Make the output non-zero so the comparison means something.
        model.latent_out = LinearConfig::new(16, 8).init(&device);
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("dit.safetensors");
        model.save_safetensors(&config, &path).unwrap();
        let (loaded_config, loaded) = Dit::<Flex>::load_safetensors(&path, &device).unwrap();
        assert_eq!(loaded_config, config);
        // The same weights and config give the same bytes, the metadata's keys in order (the
        // writer's hash map orders them anew each time).
        let bytes = std::fs::read(&path).unwrap();
        for _ in 0..4 {
            model.save_safetensors(&config, &path).unwrap();
            assert!(std::fs::read(&path).unwrap() == bytes, "bytes differ");
        }
        let header = String::from_utf8_lossy(&bytes[8..200]);
        let keys = [
            "format",
            "producer",
            "refrain.config",
            "refrain.model",
            "version",
        ];
        let at: Vec<usize> = keys
            .iter()
            .map(|k| header.find(&format!("\"{k}\":")).unwrap_or(usize::MAX))
            .collect();
        assert!(at.is_sorted(), "{header}");
        let a = model.forward(input(&config, 1, 5)).into_data();
        let b = loaded.forward(input(&config, 1, 5)).into_data();
        assert_eq!(a, b);
        let mut tokens = vec![1.0f32; 8];
        config.normalise(&mut tokens);
        assert_eq!(tokens, vec![0.25; 8]);
        config.denormalise(&mut tokens);
        assert_eq!(tokens, vec![1.0; 8]);
    }

    #[test]
    fn a_broken_config_is_refused() {
        assert!(tiny().with_heads(3).validate().is_err());
        assert!(
            tiny()
                .with_latent_mean(vec![0.0; 8])
                .with_latent_std(vec![0.0; 8])
                .validate()
                .is_err()
        );
    }
}
