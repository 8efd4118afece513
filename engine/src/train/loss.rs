//! The reconstruction loss of the bar autoencoder: binary cross-entropy on onset and hold
//! (positives weighted up, since a bar is mostly empty cells), squared error on velocity
//! where a note starts; padding cells never count.

use crate::model::autoencoder::{HOLD, ONSET, VELOCITY};
use burn::prelude::*;
use burn::tensor::activation::{log_sigmoid, sigmoid};

/// Weights of the loss terms.
#[derive(Config, Debug, PartialEq)]
pub struct ReconstructionLossConfig {
    /// Weight of a positive onset cell against a negative one.
    #[config(default = 4.0)]
    pub onset_positive_weight: f32,
    /// Weight of a positive hold cell against a negative one.
    #[config(default = 2.0)]
    pub hold_positive_weight: f32,
    /// Weight of the velocity term (velocity is in 0..1, so its errors are small).
    #[config(default = 4.0)]
    pub velocity_weight: f32,
}

/// The loss terms, each a mean; `total` is what is minimised.
pub struct ReconstructionLoss<B: Backend> {
    pub total: Tensor<B, 1>,
    pub onset: Tensor<B, 1>,
    pub hold: Tensor<B, 1>,
    pub velocity: Tensor<B, 1>,
}

/// Weighted binary cross-entropy from logits, averaged over the mask.
pub(crate) fn masked_bce<B: Backend>(
    logits: Tensor<B, 4>,
    target: Tensor<B, 4>,
    mask: Tensor<B, 4>,
    mask_total: Tensor<B, 1>,
    positive_weight: f32,
) -> Tensor<B, 1> {
    // -(w * y * log s(x) + (1 - y) * log s(-x)), with log-sigmoid for stability.
    let positive = log_sigmoid(logits.clone()) * target.clone() * positive_weight;
    let negative = log_sigmoid(logits.neg()) * (target.neg() + 1.0);
    ((positive + negative).neg() * mask).sum() / mask_total
}

impl ReconstructionLossConfig {
    /// # Shapes
    /// - `logits`: `[batch, 3, rows, steps]` from `BarAutoencoder::forward`
    /// - `target`: `[batch, 3, rows, steps]` planes
    /// - `mask`: `[batch, 1, rows, steps]`, 1 on real cells
    pub fn loss<B: Backend>(
        &self,
        logits: Tensor<B, 4>,
        target: Tensor<B, 4>,
        mask: Tensor<B, 4>,
    ) -> ReconstructionLoss<B> {
        let mask_total = mask.clone().sum().clamp_min(1.0);
        let onset_target = target.clone().narrow(1, ONSET, 1);
        let onset = masked_bce(
            logits.clone().narrow(1, ONSET, 1),
            onset_target.clone(),
            mask.clone(),
            mask_total.clone(),
            self.onset_positive_weight,
        );
        let hold = masked_bce(
            logits.clone().narrow(1, HOLD, 1),
            target.clone().narrow(1, HOLD, 1),
            mask.clone(),
            mask_total,
            self.hold_positive_weight,
        );
        let at_onsets = onset_target * mask;
        let onsets_total = at_onsets.clone().sum().clamp_min(1.0);
        let error = sigmoid(logits.narrow(1, VELOCITY, 1)) - target.narrow(1, VELOCITY, 1);
        let velocity = (error.powi_scalar(2) * at_onsets).sum() / onsets_total;
        let total = onset.clone() + hold.clone() + velocity.clone() * self.velocity_weight;
        ReconstructionLoss {
            total,
            onset,
            hold,
            velocity,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use burn::backend::Flex;

    #[test]
    fn confident_right_logits_cost_almost_nothing_and_padding_is_free() {
        let device = Default::default();
        let target = Tensor::<Flex, 4>::from_data(
            TensorData::new(vec![1.0f32, 0.0, 1.0, 0.0, 0.5, 0.0], [1, 3, 1, 2]),
            &device,
        );
        // Logits +-20 on the planes, velocity logit 0 -> sigmoid 0.5, the target.
        let logits = Tensor::<Flex, 4>::from_data(
            TensorData::new(vec![20.0f32, -20.0, 20.0, -20.0, 0.0, 0.0], [1, 3, 1, 2]),
            &device,
        );
        let mask = Tensor::<Flex, 4>::ones([1, 1, 1, 2], &device);
        let config = ReconstructionLossConfig::new();
        let right: f32 = config
            .loss(logits.clone(), target.clone(), mask)
            .total
            .into_scalar();
        assert!(right < 1e-6, "{right}");
        // The second cell is padding: getting it wrong costs nothing.
        let wrong_in_padding = Tensor::<Flex, 4>::from_data(
            TensorData::new(vec![20.0f32, 20.0, 20.0, 20.0, 0.0, 0.0], [1, 3, 1, 2]),
            &device,
        );
        let mask =
            Tensor::<Flex, 4>::from_data(TensorData::new(vec![1.0f32, 0.0], [1, 1, 1, 2]), &device);
        let padded: f32 = config
            .loss(wrong_in_padding, target, mask)
            .total
            .into_scalar();
        assert!(padded < 1e-6, "{padded}");
    }
}
