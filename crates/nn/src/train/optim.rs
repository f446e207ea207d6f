//! Optimizers, generic over the algebra: SGD with momentum (ring-only) and Adam (its `√v̂` and reciprocal
//! use the 2x2 structure on ciphertexts).

use serde::{Deserialize, Serialize};

use more_core::ElementFunction;

use crate::algebra::Algebra;
use crate::error::{Error, Result};

/// Optimizer settings.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "snake_case")]
pub enum OptimizerConfig {
    /// `v ← μ·v + g; w ← w − η·v` — ring-only.
    Sgd {
        /// Learning rate `η`.
        lr: f32,
        /// Momentum `μ` (0 for plain SGD).
        momentum: f32,
    },
    /// Adam (Kingma & Ba): `m ← β₁m + (1−β₁)g; v ← β₂v + (1−β₂)g²;
    /// w ← w − η·m̂ ⊙ 1/(√v̂ + ε)` — `√` and `1/x` use the 2x2 structure.
    Adam {
        /// Learning rate `η`.
        lr: f32,
        /// `β₁`.
        beta1: f32,
        /// `β₂`.
        beta2: f32,
        /// `ε`.
        eps: f32,
    },
}

impl OptimizerConfig {
    /// Adam with the usual defaults and learning rate `lr`.
    pub fn adam(lr: f32) -> Self {
        OptimizerConfig::Adam { lr, beta1: 0.9, beta2: 0.999, eps: 1e-8 }
    }

    /// The learning rate.
    pub fn lr(&self) -> f32 {
        match *self {
            Self::Sgd { lr, .. } | Self::Adam { lr, .. } => lr,
        }
    }

    /// The same settings with another learning rate.
    pub fn with_lr(self, lr: f32) -> Self {
        match self {
            Self::Sgd { momentum, .. } => Self::Sgd { lr, momentum },
            Self::Adam { beta1, beta2, eps, .. } => Self::Adam { lr, beta1, beta2, eps },
        }
    }
}

/// Optimizer state for one network's parameters.
#[derive(Debug, Clone)]
pub struct Optimizer<A: Algebra> {
    config: OptimizerConfig,
    step: u32,
    first: Vec<Option<A::Tensor>>,
    second: Vec<Option<A::Tensor>>,
}

impl<A: Algebra> Optimizer<A> {
    /// Fresh state (moments start at zero).
    pub fn new(config: OptimizerConfig) -> Self {
        Optimizer { config, step: 0, first: vec![], second: vec![] }
    }

    /// The settings.
    pub fn config(&self) -> OptimizerConfig {
        self.config
    }

    /// Changes the learning rate (schedules).
    pub fn set_lr(&mut self, lr: f32) {
        self.config = self.config.with_lr(lr);
    }

    /// One update of `params` with `grads` (same order and shapes).
    pub fn step(&mut self, alg: &A, params: Vec<&mut A::Tensor>, grads: &[A::Tensor]) -> Result<()> {
        if params.len() != grads.len() {
            return Err(Error::Training(format!("{} parameters but {} gradients", params.len(), grads.len())));
        }
        if self.first.is_empty() {
            self.first = vec![None; params.len()];
            self.second = vec![None; params.len()];
        }
        self.step += 1;
        for (i, (w, g)) in params.into_iter().zip(grads).enumerate() {
            match self.config {
                OptimizerConfig::Sgd { lr, momentum } => {
                    let v = match self.first[i].take() {
                        Some(v) if momentum != 0.0 => alg.add(&alg.scale(&v, momentum)?, g)?,
                        _ => g.clone(),
                    };
                    *w = alg.sub(w, &alg.scale(&v, lr)?)?;
                    if momentum != 0.0 {
                        self.first[i] = Some(v);
                    }
                }
                OptimizerConfig::Adam { lr, beta1, beta2, eps } => {
                    let g1 = alg.scale(g, 1.0 - beta1)?;
                    let m = match self.first[i].take() {
                        Some(m) => alg.add(&alg.scale(&m, beta1)?, &g1)?,
                        None => g1,
                    };
                    let g2 = alg.scale(&alg.mul(g, g)?, 1.0 - beta2)?;
                    let v = match self.second[i].take() {
                        Some(v) => alg.add(&alg.scale(&v, beta2)?, &g2)?,
                        None => g2,
                    };
                    let t = self.step as i32;
                    let c1 = 1.0 - beta1.powi(t);
                    let c2 = 1.0 - beta2.powi(t);
                    // w ← w − (η/c1)·m ⊙ 1/(√(v/c2) + ε)
                    let denom = alg.shift(&alg.map(&alg.scale(&v, 1.0 / c2)?, ElementFunction::Sqrt)?, eps)?;
                    let upd = alg.mul(&m, &alg.map(&denom, ElementFunction::Recip)?)?;
                    *w = alg.sub(w, &alg.scale(&upd, lr / c1)?)?;
                    self.first[i] = Some(m);
                    self.second[i] = Some(v);
                }
            }
        }
        Ok(())
    }
}
