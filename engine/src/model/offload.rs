//! The DiT on another backend than the rest of the engine: with the `cuda` feature, a GPU
//! evaluates the DiT while planning, decoding, the critic and rendering stay on the CPU.
//! Each evaluation's inputs (a few thousand numbers per window) move to the device and the
//! predicted velocity comes back; batched across songs ([`super::DitBatcher`]), one transfer
//! carries many windows.

use super::batcher::Denoiser;
use super::dit::{Dit, DitInput};
use crate::Error;
use burn::tensor::backend::Backend;
use burn::tensor::{BasicOps, Tensor, TensorKind};
use std::path::Path;
use std::sync::Mutex;

/// A DiT held on backend `T`'s device, evaluated for callers on any other backend.
pub struct OffloadedDit<T: Backend> {
    // One pass at a time: a device runs one pass at a time anyway, and the lock spares
    // asking every backend's modules to be shareable between threads.
    dit: Mutex<Dit<T>>,
    device: T::Device,
}

impl<T: Backend> OffloadedDit<T> {
    /// Loads a DiT weights file onto `device`.
    pub fn load(path: &Path, device: &T::Device) -> Result<Self, Error> {
        let (_, dit) = Dit::load_safetensors(path, device)?;
        Ok(Self::new(dit, device))
    }

    pub fn new(dit: Dit<T>, device: &T::Device) -> Self {
        OffloadedDit {
            dit: Mutex::new(dit),
            device: device.clone(),
        }
    }
}

/// A tensor's values on another backend's device.
fn moved<F, T, const D: usize, K>(tensor: Tensor<F, D, K>, device: &T::Device) -> Tensor<T, D, K>
where
    F: Backend,
    T: Backend,
    K: TensorKind<F> + TensorKind<T> + BasicOps<F> + BasicOps<T>,
{
    Tensor::from_data(tensor.into_data(), device)
}

impl<B: Backend, T: Backend> Denoiser<B> for OffloadedDit<T>
where
    T::Device: Sync,
{
    fn denoise(&self, input: DitInput<B>) -> Tensor<B, 3> {
        let home = input.tokens.device();
        let there = DitInput {
            tokens: moved(input.tokens, &self.device),
            token_fields: moved(input.token_fields, &self.device),
            song_fields: moved(input.song_fields, &self.device),
            time: moved(input.time, &self.device),
        };
        let velocity = self
            .dit
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
            .forward(there);
        moved(velocity, &home)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::model::DitBatcher;
    use crate::model::autoencoder::SeededInit;
    use crate::model::batcher::tests::{input, values};
    use crate::model::dit::tests::tiny;
    use burn::backend::Flex;
    use burn::module::Module;
    use rand::SeedableRng;
    use rand_chacha::ChaCha8Rng;
    use std::time::Duration;

    /// A tiny seeded DiT and its weights file.
    fn saved_dit(dir: &Path) -> (Dit<Flex>, std::path::PathBuf) {
        let device = Default::default();
        let config = tiny();
        let dit = config
            .init_seeded::<Flex>(&device, 1)
            .map(&mut SeededInit::new(ChaCha8Rng::seed_from_u64(5), device));
        let path = dir.join("dit.safetensors");
        dit.save_safetensors(&config, &path).unwrap();
        (dit, path)
    }

    #[test]
    fn an_offloaded_dit_gives_the_values_of_the_dit_itself_alone_and_batched() {
        let dir = tempfile::tempdir().unwrap();
        let (dit, path) = saved_dit(dir.path());
        // Another instance of the same backend stands in for the device here, so the values
        // must match exactly: only the path the tensors travel differs.
        let offloaded = OffloadedDit::<Flex>::load(&path, &Default::default()).unwrap();
        for (seed, windows, tokens) in [(1, 1, 8), (2, 3, 12)] {
            let x = input(seed, windows, tokens);
            assert_eq!(
                values(Denoiser::<Flex>::denoise(&offloaded, x.clone())),
                values(dit.forward(x))
            );
        }
        let batcher = DitBatcher::new(offloaded, Duration::from_millis(5), 64);
        let x = input(3, 2, 8);
        assert_eq!(values(batcher.denoise(x.clone())), values(dit.forward(x)));
    }

    #[cfg(feature = "ndarray")]
    #[test]
    fn a_dit_on_another_backend_answers_callers_on_flex() {
        let dir = tempfile::tempdir().unwrap();
        let (dit, path) = saved_dit(dir.path());
        let offloaded =
            OffloadedDit::<burn::backend::NdArray>::load(&path, &Default::default()).unwrap();
        let x = input(4, 2, 8);
        let there = values(Denoiser::<Flex>::denoise(&offloaded, x.clone()));
        let here = values(dit.forward(x));
        assert_eq!(there.len(), here.len());
        for (a, b) in there.iter().zip(&here) {
            assert!((a - b).abs() < 1e-4, "{a} against {b}");
        }
    }
}
