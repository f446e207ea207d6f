//! Encrypted models fall to the same attacks: outputs (logits) and weights are ciphertexts under the
//! data owner's key.
//!
//! - **Outputs.** A model with plaintext weights maps ciphertexts under a key to ciphertexts under the same
//!   key, so the eigenbasis recovered from the *input* image (or from the outputs themselves) decrypts the
//!   logits, and the server learns the answer and its margin: [`leak_outputs`].
//! - **Weights** trained on encrypted data hold the real model in one lane and a shadow model (trained on
//!   the noise) in the other; the same eigenbasis splits them. Which lane is the real model is again one
//!   bit — settled by the key's orientation from the training data, or by which candidate model classifies
//!   public data better. [`Recovery::decrypt`](crate::attack::Recovery::decrypt) applies to weight tensors
//!   unchanged.

use ndarray::{ArrayD, Axis, Ix2};

use crate::attack::basis::{Eigenbasis, Lane};
use crate::attack::error::{AttackError, Result};
use crate::real::Real;
use crate::tensor::EncryptedTensor;

/// What the server reads from encrypted model outputs.
#[derive(Debug, Clone, PartialEq)]
pub struct OutputLeak {
    /// The output values (logits), shape `[N, K]`.
    pub values: ArrayD<f64>,
    /// The predicted class of each row.
    pub argmax: Vec<usize>,
    /// The gap between the largest and second-largest value of each row (the model's confidence).
    pub margin: Vec<f64>,
}

/// Decrypts encrypted outputs of shape `[N, K]` (or `[K]`) on `lane` of `basis` and reads the answer.
pub fn leak_outputs<F: Real>(basis: &Eigenbasis, lane: Lane, outputs: &EncryptedTensor<F>) -> Result<OutputLeak> {
    let values = basis.lane(outputs, lane);
    let values = match values.ndim() {
        1 => values.insert_axis(Axis(0)),
        2 => values,
        d => return Err(AttackError::Input(format!("outputs must be [N, K] or [K], got {d} dimensions"))),
    };
    let m = values.view().into_dimensionality::<Ix2>().map_err(|e| AttackError::Input(e.to_string()))?;
    let mut argmax = Vec::with_capacity(m.nrows());
    let mut margin = Vec::with_capacity(m.nrows());
    for row in m.rows() {
        let (mut best, mut first, mut second) = (0usize, f64::NEG_INFINITY, f64::NEG_INFINITY);
        for (k, &v) in row.iter().enumerate() {
            if v > first {
                second = first;
                first = v;
                best = k;
            } else if v > second {
                second = v;
            }
        }
        argmax.push(best);
        margin.push(if second.is_finite() { first - second } else { 0.0 });
    }
    Ok(OutputLeak { values, argmax, margin })
}
