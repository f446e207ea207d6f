//! Losses: the gradient runs in the algebra; the value is computed by whoever may see it (see
//! [`Loss::value`]).

use ndarray::{ArrayD, Axis, Ix2};
use serde::{Deserialize, Serialize};

use more_core::ElementFunction;

use crate::algebra::Algebra;
use crate::error::{Error, Result};

/// A training loss over `[N, K]` outputs and targets.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Loss {
    /// Softmax cross-entropy on logits, `−Σ y·ln softmax(z) / N` (one-hot or soft targets). Gradient
    /// `(softmax(z) − y)/N`: `exp` and the reciprocal use the 2x2 structure, the rest is ring-only.
    CrossEntropy,
    /// Mean squared error `Σ (z − y)² / (N·K)`. Gradient `2(z − y)/(N·K)`: ring-only.
    Mse,
}

impl Loss {
    /// `∂L/∂outputs`, computed in the algebra.
    pub fn gradient<A: Algebra>(self, alg: &A, outputs: &A::Tensor, targets: &A::Tensor) -> Result<A::Tensor> {
        let s = alg.shape(outputs);
        if s.len() != 2 || alg.shape(targets) != s {
            return Err(Error::shape("loss", format!("targets of shape {s:?}"), &alg.shape(targets)));
        }
        match self {
            Loss::CrossEntropy => {
                let p = alg.softmax_rows(outputs)?;
                alg.scale(&alg.sub(&p, targets)?, 1.0 / s[0] as f32)
            }
            Loss::Mse => alg.scale(&alg.sub(outputs, targets)?, 2.0 / (s[0] * s[1]) as f32),
        }
    }

    /// The loss as a tensor of shape `[1]`, computed in the algebra (for a key owner to decrypt). Uses
    /// `ln` (2x2) for cross-entropy.
    pub fn value_tensor<A: Algebra>(self, alg: &A, outputs: &A::Tensor, targets: &A::Tensor) -> Result<A::Tensor> {
        let s = alg.shape(outputs);
        match self {
            Loss::CrossEntropy => {
                let p = alg.softmax_rows(outputs)?;
                let lp = alg.map(&alg.shift(&p, 1e-7)?, ElementFunction::Ln)?;
                alg.scale(&alg.sum_all(&alg.mul(targets, &lp)?)?, -1.0 / s[0] as f32)
            }
            Loss::Mse => {
                let d = alg.sub(outputs, targets)?;
                alg.scale(&alg.sum_all(&alg.mul(&d, &d)?)?, 1.0 / (s[0] * s[1]) as f32)
            }
        }
    }

    /// The loss value from plaintext (revealed) outputs and targets `[N, K]`, as a sum over samples (divide
    /// by `N` for the mean). Cross-entropy is computed stably (log-sum-exp).
    pub fn value(self, outputs: &ArrayD<f32>, targets: &ArrayD<f32>) -> Result<f64> {
        let o =
            outputs.view().into_dimensionality::<Ix2>().map_err(|_| Error::shape("loss", "[N, K]", outputs.shape()))?;
        let t =
            targets.view().into_dimensionality::<Ix2>().map_err(|_| Error::shape("loss", "[N, K]", targets.shape()))?;
        if o.dim() != t.dim() {
            return Err(Error::shape("loss", format!("{:?}", o.shape()), t.shape()));
        }
        Ok(match self {
            Loss::CrossEntropy => o
                .axis_iter(Axis(0))
                .zip(t.axis_iter(Axis(0)))
                .map(|(z, y)| {
                    let m = z.fold(f32::NEG_INFINITY, |a, &b| a.max(b)) as f64;
                    let lse = m + z.iter().map(|&v| (v as f64 - m).exp()).sum::<f64>().ln();
                    z.iter().zip(y.iter()).map(|(&zi, &yi)| yi as f64 * (lse - zi as f64)).sum::<f64>()
                })
                .sum(),
            Loss::Mse => {
                let k = o.ncols().max(1) as f64;
                o.iter().zip(t.iter()).map(|(&a, &b)| ((a - b) as f64).powi(2)).sum::<f64>() / k
            }
        })
    }
}
