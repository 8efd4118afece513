//! The learned models, inference side only: the bar autoencoder (stem-bar planes <-> latent
//! tokens). Training lives in [`crate::train`] behind the `train` feature, so code that only
//! samples links none of it.

pub mod autoencoder;

pub use autoencoder::{BarAutoencoder, BarAutoencoderConfig, BarGrid};
