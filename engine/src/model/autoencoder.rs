//! The bar autoencoder: one stem in one bar (onset, hold and velocity planes over
//! pitch x step) <-> a small latent vector, the token the DiT denoises.
//!
//! Every stem-bar is padded into one fixed grid (48 pitch rows x 16 steps by default) so one
//! network serves all stems and meters: drums use their first 11 rows, 3/4 and 6/8 bars their
//! first 12 steps, and the rest is zero on the way in and ignored on the way out (training
//! masks it out of the loss). A learned stem embedding tells the encoder and the decoder which
//! stem a grid holds, since the same row means a kick for drums and a pitch for bass.
//!
//! The network is a plain MLP over the flattened grid: a bar is small (2 304 inputs), every
//! note's exact cell matters (a convolution's translation invariance buys little when a pitch
//! row is a specific scale degree), and dense matrix products are what CPU backends do fastest.

use crate::Error;
use crate::music::{Meter, Stem};
use crate::planes::BarPlanes;
use burn::module::{ModuleMapper, Param};
use burn::nn::{Embedding, EmbeddingConfig, Linear, LinearConfig};
use burn::prelude::*;
use burn::store::{ModuleSnapshot, SafetensorsStore};
use burn::tensor::activation::{gelu, sigmoid};
use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;
use std::path::Path;

/// Planes per stem-bar: onset, hold, velocity (in this order along dimension 1).
pub const PLANES: usize = 3;
/// Index of the onset plane.
pub const ONSET: usize = 0;
/// Index of the hold plane.
pub const HOLD: usize = 1;
/// Index of the velocity plane.
pub const VELOCITY: usize = 2;

/// Configuration of a [`BarAutoencoder`].
#[derive(Config, Debug, PartialEq)]
pub struct BarAutoencoderConfig {
    /// Pitch rows of the padded grid (at least the widest stem's range, 48).
    #[config(default = 48)]
    pub rows: usize,
    /// Steps of the padded grid (at least the longest bar, 16 for 4/4).
    #[config(default = 16)]
    pub steps: usize,
    /// Number of stem ids the embeddings know (`Stem::ALL.len()`).
    #[config(default = 5)]
    pub stems: usize,
    /// Size of one stem-bar's latent vector.
    #[config(default = 48)]
    pub latent_dim: usize,
    /// Width of the layer next to the grid (encoder input and decoder output side).
    #[config(default = 512)]
    pub hidden: usize,
    /// Width of the layer next to the latent.
    #[config(default = 256)]
    pub bottleneck_hidden: usize,
    /// Subtracted from the onset logits before the sigmoid when decoding: ln of the loss's
    /// positive weight (4), which turns the optimum of the weighted cross-entropy back into a
    /// calibrated probability, so 0.5 is the right threshold.
    #[config(default = "2.0 * std::f32::consts::LN_2")]
    pub onset_logit_offset: f32,
    /// The same for the hold logits: ln of the hold positive weight (2).
    #[config(default = "std::f32::consts::LN_2")]
    pub hold_logit_offset: f32,
}

impl BarAutoencoderConfig {
    /// Builds the autoencoder with freshly initialised weights.
    pub fn init<B: Backend>(&self, device: &B::Device) -> BarAutoencoder<B> {
        let cells = PLANES * self.rows * self.steps;
        BarAutoencoder {
            encoder_in: LinearConfig::new(cells, self.hidden).init(device),
            encoder_stem: EmbeddingConfig::new(self.stems, self.hidden).init(device),
            encoder_mid: LinearConfig::new(self.hidden, self.bottleneck_hidden).init(device),
            encoder_out: LinearConfig::new(self.bottleneck_hidden, self.latent_dim).init(device),
            decoder_in: LinearConfig::new(self.latent_dim, self.bottleneck_hidden).init(device),
            decoder_stem: EmbeddingConfig::new(self.stems, self.bottleneck_hidden).init(device),
            decoder_mid: LinearConfig::new(self.bottleneck_hidden, self.hidden).init(device),
            decoder_out: LinearConfig::new(self.hidden, cells).init(device),
            rows: self.rows,
            steps: self.steps,
            onset_logit_offset: self.onset_logit_offset,
            hold_logit_offset: self.hold_logit_offset,
        }
    }

    /// Builds the autoencoder with weights drawn from a ChaCha stream seeded by `seed`: the
    /// same seed gives the same weights on every backend and in every thread (Burn's own
    /// initialisers draw from one process-wide generator that parallel work would disturb).
    /// Weights are uniform in +-1/sqrt(fan_in) (embeddings: +-1/sqrt(stems)), biases zero.
    pub fn init_seeded<B: Backend>(&self, device: &B::Device, seed: u64) -> BarAutoencoder<B> {
        let model = self.init::<B>(device);
        model.map(&mut SeededInit::new(
            ChaCha8Rng::seed_from_u64(seed),
            device.clone(),
        ))
    }

    /// The padded grid this configuration reads and writes.
    pub fn grid(&self) -> BarGrid {
        BarGrid {
            rows: self.rows,
            steps: self.steps,
        }
    }
}

/// Replaces every float parameter with draws from one seeded stream, in module order.
pub struct SeededInit<B: Backend> {
    rng: ChaCha8Rng,
    device: B::Device,
}

impl<B: Backend> SeededInit<B> {
    pub fn new(rng: ChaCha8Rng, device: B::Device) -> Self {
        SeededInit { rng, device }
    }
}

impl<B: Backend> ModuleMapper<B> for SeededInit<B> {
    fn map_float<const D: usize>(&mut self, param: Param<Tensor<B, D>>) -> Param<Tensor<B, D>> {
        let (id, tensor, mapper) = param.consume();
        let require_grad = tensor.is_require_grad();
        let shape = tensor.shape();
        let dims: Vec<usize> = shape.iter().copied().collect();
        let count: usize = dims.iter().product();
        let values: Vec<f32> = if D == 1 {
            vec![0.0; count]
        } else {
            // Linear weights are [d_input, d_output], so dims[0] is the fan-in; embeddings
            // ([stems, width]) get the same rule.
            let bound = 1.0 / (dims[0] as f32).sqrt();
            (0..count)
                .map(|_| self.rng.random_range(-bound..=bound))
                .collect()
        };
        let fresh = Tensor::<B, D>::from_data(TensorData::new(values, dims), &self.device);
        let fresh = if require_grad {
            fresh.require_grad()
        } else {
            fresh
        };
        Param::from_mapped_value(id, fresh, mapper)
    }
}

/// Stem-bar planes <-> latent vector. See the module documentation for the design.
#[derive(Module, Debug)]
pub struct BarAutoencoder<B: Backend> {
    encoder_in: Linear<B>,
    encoder_stem: Embedding<B>,
    encoder_mid: Linear<B>,
    encoder_out: Linear<B>,
    decoder_in: Linear<B>,
    decoder_stem: Embedding<B>,
    decoder_mid: Linear<B>,
    decoder_out: Linear<B>,
    rows: usize,
    steps: usize,
    onset_logit_offset: f32,
    hold_logit_offset: f32,
}

impl<B: Backend> BarAutoencoder<B> {
    /// Compresses stem-bars to latent vectors.
    ///
    /// # Shapes
    /// - `planes`: `[batch, 3, rows, steps]`, onset / hold / velocity in 0..1, zero padded
    /// - `stems`: `[batch]`, index into `Stem::ALL`
    /// - output: `[batch, latent_dim]`
    pub fn encode(&self, planes: Tensor<B, 4>, stems: Tensor<B, 1, Int>) -> Tensor<B, 2> {
        let [batch, planes_in, rows, steps] = planes.dims();
        debug_assert_eq!((planes_in, rows, steps), (PLANES, self.rows, self.steps));
        let flat = planes.reshape([batch, PLANES * rows * steps]);
        let stem = self
            .encoder_stem
            .forward(stems.unsqueeze_dim(1))
            .squeeze_dim(1);
        let x = gelu(self.encoder_in.forward(flat) + stem);
        let x = gelu(self.encoder_mid.forward(x));
        self.encoder_out.forward(x)
    }

    /// Expands latent vectors to plane logits: onset and hold logits (sigmoid gives the
    /// probability), velocity logits (sigmoid gives velocity / 127, meaningful where an onset
    /// is).
    ///
    /// # Shapes
    /// - `latent`: `[batch, latent_dim]`
    /// - `stems`: `[batch]`, index into `Stem::ALL`
    /// - output: `[batch, 3, rows, steps]`
    pub fn decode(&self, latent: Tensor<B, 2>, stems: Tensor<B, 1, Int>) -> Tensor<B, 4> {
        let [batch, _] = latent.dims();
        let stem = self
            .decoder_stem
            .forward(stems.unsqueeze_dim(1))
            .squeeze_dim(1);
        let x = gelu(self.decoder_in.forward(latent) + stem);
        let x = gelu(self.decoder_mid.forward(x));
        self.decoder_out
            .forward(x)
            .reshape([batch, PLANES, self.rows, self.steps])
    }

    /// Decodes to plane values in 0..1 (sigmoid of [`Self::decode`]), ready for
    /// [`BarGrid::read_planes`].
    ///
    /// # Shapes
    /// - `latent`: `[batch, latent_dim]`, `stems`: `[batch]`
    /// - output: `[batch, 3, rows, steps]`
    pub fn decode_values(&self, latent: Tensor<B, 2>, stems: Tensor<B, 1, Int>) -> Tensor<B, 4> {
        self.values_from_logits(self.decode(latent, stems))
    }

    /// Plane logits to calibrated plane values: the onset and hold logits shifted by the
    /// config's offsets, then the sigmoid.
    ///
    /// # Shapes
    /// - `logits`: `[batch, 3, rows, steps]`, output the same
    pub fn values_from_logits(&self, logits: Tensor<B, 4>) -> Tensor<B, 4> {
        let device = logits.device();
        let offsets = Tensor::<B, 1>::from_data(
            TensorData::new(
                vec![self.onset_logit_offset, self.hold_logit_offset, 0.0],
                [PLANES],
            ),
            &device,
        )
        .reshape([1, PLANES, 1, 1]);
        sigmoid(logits - offsets)
    }

    /// Encode then decode, returning logits.
    ///
    /// # Shapes
    /// - `planes`: `[batch, 3, rows, steps]`, `stems`: `[batch]`
    /// - output: `[batch, 3, rows, steps]`
    pub fn forward(&self, planes: Tensor<B, 4>, stems: Tensor<B, 1, Int>) -> Tensor<B, 4> {
        let latent = self.encode(planes, stems.clone());
        self.decode(latent, stems)
    }

    /// Writes the weights as one safetensors file (the config goes in its metadata too, so a
    /// file found alone still says what it is).
    pub fn save_safetensors(
        &self,
        config: &BarAutoencoderConfig,
        path: &Path,
    ) -> Result<(), Error> {
        super::save_safetensors(self, "bar-autoencoder", config.to_string(), path)
    }

    /// Loads a file written by [`Self::save_safetensors`], config from its metadata.
    pub fn load_file(
        path: &Path,
        device: &B::Device,
    ) -> Result<(BarAutoencoderConfig, BarAutoencoder<B>), Error> {
        let config = super::read_config(path, "bar-autoencoder", BarAutoencoderConfig::new())?;
        let model = Self::load_safetensors(&config, path, device)?;
        Ok((config, model))
    }

    /// Loads weights written by [`Self::save_safetensors`] into a model built from `config`;
    /// a file made for another config is an error that says so.
    pub fn load_safetensors(
        config: &BarAutoencoderConfig,
        path: &Path,
        device: &B::Device,
    ) -> Result<BarAutoencoder<B>, Error> {
        if !path.is_file() {
            return Err(Error::Model(format!(
                "no bar autoencoder weights at {}",
                path.display()
            )));
        }
        let mut model = config.init::<B>(device);
        let mut store = SafetensorsStore::from_file(path);
        let result = model.load_from(&mut store).map_err(|e| {
            Error::Model(format!(
                "{} does not fit this bar autoencoder config ({e}); was it trained with another \
                 config?",
                path.display()
            ))
        })?;
        if !result.missing.is_empty() || !result.errors.is_empty() {
            return Err(Error::Model(format!(
                "{} does not fit this bar autoencoder config: missing {:?}, errors {:?}",
                path.display(),
                result.missing,
                result.errors
            )));
        }
        Ok(model)
    }
}

/// The fixed grid stem-bars are padded into, and the conversions between [`BarPlanes`] and
/// the flat `[3, rows, steps]` values the model reads and writes.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct BarGrid {
    pub rows: usize,
    pub steps: usize,
}

impl BarGrid {
    /// Values in one stem-bar: `3 * rows * steps`.
    pub fn values(&self) -> usize {
        PLANES * self.rows * self.steps
    }

    /// Cells in one plane: `rows * steps`.
    pub fn cells(&self) -> usize {
        self.rows * self.steps
    }

    /// The stem's id for the embeddings: its index in `Stem::ALL`.
    pub fn stem_id(stem: Stem) -> usize {
        Stem::ALL
            .iter()
            .position(|&s| s == stem)
            .unwrap_or_default()
    }

    /// Whether a stem-bar of this stem and meter fits the grid.
    pub fn fits(&self, stem: Stem, meter: Meter) -> bool {
        stem.pitch_range().1 as usize <= self.rows && meter.steps_per_bar() as usize <= self.steps
    }

    fn check(&self, stem: Stem, meter: Meter) -> Result<(), Error> {
        if self.fits(stem, meter) {
            Ok(())
        } else {
            Err(Error::Model(format!(
                "a {stem} bar in {meter} ({} rows x {} steps) does not fit the autoencoder's \
                 {} x {} grid",
                stem.pitch_range().1,
                meter.steps_per_bar(),
                self.rows,
                self.steps
            )))
        }
    }

    /// Writes planes into `out` (`[3, rows, steps]`, row-major), zero padded.
    pub fn write_planes(&self, planes: &BarPlanes, out: &mut [f32]) -> Result<(), Error> {
        let (rows, steps) = (planes.rows as usize, planes.steps as usize);
        let cells = rows * steps;
        if rows > self.rows
            || steps > self.steps
            || out.len() != self.values()
            || [&planes.onset, &planes.hold, &planes.velocity]
                .iter()
                .any(|p| p.len() != cells)
        {
            return Err(Error::Model(format!(
                "{} planes of {rows} x {steps} do not fit the autoencoder's {} x {} grid",
                planes.stem, self.rows, self.steps
            )));
        }
        out.fill(0.0);
        for (plane, source) in [&planes.onset, &planes.hold, &planes.velocity]
            .into_iter()
            .enumerate()
        {
            for row in 0..rows {
                let from = row * steps;
                let to = plane * self.cells() + row * self.steps;
                out[to..to + steps].copy_from_slice(&source[from..from + steps]);
            }
        }
        Ok(())
    }

    /// Writes the mask of real cells (1) against padding (0) into `out` (`[rows, steps]`).
    pub fn write_mask(&self, stem: Stem, meter: Meter, out: &mut [f32]) {
        let rows = (stem.pitch_range().1 as usize).min(self.rows);
        let steps = (meter.steps_per_bar() as usize).min(self.steps);
        for row in 0..self.rows {
            for step in 0..self.steps {
                out[row * self.steps + step] = if row < rows && step < steps { 1.0 } else { 0.0 };
            }
        }
    }

    /// Reads decoded values (`[3, rows, steps]` in 0..1, e.g. one item of
    /// [`BarAutoencoder::decode_values`]) back into planes for `stem` in `meter`, dropping
    /// the padding. Onset and hold stay probabilities; `planes_to_notes` thresholds them.
    pub fn read_planes(
        &self,
        values: &[f32],
        stem: Stem,
        meter: Meter,
    ) -> Result<BarPlanes, Error> {
        self.check(stem, meter)?;
        if values.len() != self.values() {
            return Err(Error::Model(format!(
                "expected {} decoded values, got {}",
                self.values(),
                values.len()
            )));
        }
        let mut planes = BarPlanes::empty(stem, meter);
        let (rows, steps) = (planes.rows as usize, planes.steps as usize);
        for row in 0..rows {
            for step in 0..steps {
                let at = row * self.steps + step;
                let cell = row * steps + step;
                planes.onset[cell] = values[ONSET * self.cells() + at];
                planes.hold[cell] = values[HOLD * self.cells() + at];
                planes.velocity[cell] = values[VELOCITY * self.cells() + at];
            }
        }
        Ok(planes)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::music::Note;
    use crate::planes::{notes_to_planes, planes_to_notes};
    use burn::backend::Flex;

    fn tiny() -> BarAutoencoderConfig {
        BarAutoencoderConfig::new()
            .with_latent_dim(8)
            .with_hidden(32)
            .with_bottleneck_hidden(16)
    }

    #[test]
    fn encode_and_decode_have_the_documented_shapes() {
        let device = Default::default();
        let config = tiny();
        let model = config.init::<Flex>(&device);
        let planes = Tensor::<Flex, 4>::zeros([3, PLANES, 48, 16], &device);
        let stems = Tensor::<Flex, 1, Int>::from_ints([0, 2, 4], &device);
        let latent = model.encode(planes.clone(), stems.clone());
        assert_eq!(latent.dims(), [3, 8]);
        assert_eq!(
            model.decode(latent, stems.clone()).dims(),
            [3, PLANES, 48, 16]
        );
        assert_eq!(model.forward(planes, stems).dims(), [3, PLANES, 48, 16]);
    }

    #[test]
    fn the_grid_round_trips_planes_of_every_stem_and_meter() {
        let grid = BarAutoencoderConfig::new().grid();
        for stem in Stem::ALL {
            for meter in Meter::ALL {
                let (low, rows) = stem.pitch_range();
                let notes = vec![
                    Note {
                        start: 0,
                        duration: 3,
                        pitch: low,
                        velocity: 100,
                    },
                    Note {
                        start: meter.steps_per_bar() - 1,
                        duration: 1,
                        pitch: low + rows as i32 - 1,
                        velocity: 64,
                    },
                ];
                let planes = notes_to_planes(stem, meter, 1, &notes).unwrap();
                let mut values = vec![0.0; grid.values()];
                grid.write_planes(&planes[0], &mut values).unwrap();
                let back = grid.read_planes(&values, stem, meter).unwrap();
                assert_eq!(back, planes[0]);
                assert_eq!(planes_to_notes(&[back]), notes);
                let mut mask = vec![0.0; grid.cells()];
                grid.write_mask(stem, meter, &mut mask);
                let real = mask.iter().filter(|&&m| m == 1.0).count();
                assert_eq!(real, (rows * meter.steps_per_bar()) as usize);
            }
        }
    }

    #[test]
    fn weights_round_trip_through_safetensors_and_a_wrong_config_is_an_error() {
        let device = Default::default();
        let config = tiny();
        let model = config.init::<Flex>(&device);
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("ae.safetensors");
        model.save_safetensors(&config, &path).unwrap();
        let loaded = BarAutoencoder::<Flex>::load_safetensors(&config, &path, &device).unwrap();
        let planes = Tensor::<Flex, 4>::ones([2, PLANES, 48, 16], &device);
        let stems = Tensor::<Flex, 1, Int>::from_ints([1, 3], &device);
        let a = model.encode(planes.clone(), stems.clone()).into_data();
        let b = loaded.encode(planes, stems).into_data();
        assert_eq!(a, b);
        let other = config.clone().with_latent_dim(9);
        assert!(BarAutoencoder::<Flex>::load_safetensors(&other, &path, &device).is_err());
        assert!(
            BarAutoencoder::<Flex>::load_safetensors(&config, &dir.path().join("none"), &device)
                .is_err()
        );
    }
}
