//! Attack 3 (Tsaban & Lifshitz 2015): two ciphertexts under one key are linearly related.
//!
//! `C₁ = r₁·I + (m₁ − r₁)·P` and `C₂ = r₂·I + (m₂ − r₂)·P` share `P`, so
//! `C₂ = α·C₁ + β·I` with `α = (m₂ − r₂)/(m₁ − r₁)` and `β = r₂ − α·r₁` — and both `α` and `β` are
//! computable from the two matrices alone (`α` from their traceless parts, `β` from the traces). Applying
//! the relation to the message lane gives `m₂ = α·m₁ + β`: **one known plaintext decrypts every other
//! ciphertext**, without ever forming the key. (Tsaban & Lifshitz used it to break the original modular
//! MORE; it holds over the reals unchanged.)
//!
//! Precision: `α` divides by the lane gap `m₁ − r₁` of the known ciphertext, so choose a known pair whose
//! lanes are far apart (large `|trace C₁ − 2·m₁|`).

use ndarray::{ArrayD, IxDyn};

use crate::attack::error::{AttackError, Result};
use crate::cipher::Ciphertext;
use crate::real::Real;
use crate::tensor::EncryptedTensor;

/// `C₂ = α·C₁ + β·I`.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct LinearRelation {
    /// `α = (m₂ − r₂)/(m₁ − r₁)`.
    pub alpha: f64,
    /// `β = r₂ − α·r₁`.
    pub beta: f64,
    /// `‖C₂ − α·C₁ − β·I‖ / ‖C₂‖` (Frobenius): rounding for ciphertexts under one key, of order one
    /// otherwise.
    pub residual: f64,
}

impl LinearRelation {
    /// The relation expressing `c2` through `c1`. Fails when `c1` has equal lanes (`C₁ = m₁·I`).
    pub fn between(c1: &Ciphertext, c2: &Ciphertext) -> Result<Self> {
        let (a, b) = (c1.0, c2.0);
        let t1 = [0.5 * (a[0][0] - a[1][1]), a[0][1], a[1][0]];
        let t2 = [0.5 * (b[0][0] - b[1][1]), b[0][1], b[1][0]];
        // Frobenius inner products of the traceless parts [[x, y], [z, −x]]: 2·x·x' + y·y' + z·z'.
        let dot = |u: &[f64; 3], v: &[f64; 3]| 2.0 * u[0] * v[0] + u[1] * v[1] + u[2] * v[2];
        let n1 = dot(&t1, &t1);
        let scale: f64 = a.iter().flatten().map(|x| x * x).sum();
        if n1.is_nan() || n1 <= 1e-24 * scale {
            return Err(AttackError::EqualLanes("Tsaban–Lifshitz relation"));
        }
        let alpha = dot(&t1, &t2) / n1;
        let beta = 0.5 * (c2.trace() - alpha * c1.trace());
        let fitted = c1.scale(alpha).shift(beta);
        let diff: f64 = b.iter().flatten().zip(fitted.0.iter().flatten()).map(|(x, y)| (x - y) * (x - y)).sum();
        let norm: f64 = b.iter().flatten().map(|x| x * x).sum();
        let residual = if norm > 0.0 { (diff / norm).sqrt() } else { diff.sqrt() };
        Ok(Self { alpha, beta, residual })
    }

    /// `α·m₁ + β`: the plaintext of `C₂` given the plaintext `m₁` of `C₁`.
    pub fn apply(&self, m1: f64) -> f64 {
        self.alpha * m1 + self.beta
    }
}

/// Decrypts every element of `t` from one known pair `(known, m)` through the linear relation.
pub fn decrypt_with_known<F: Real>(known: &Ciphertext, m: f64, t: &EncryptedTensor<F>) -> Result<ArrayD<f64>> {
    let mut out = Vec::with_capacity(t.len());
    for i in 0..t.len() {
        let c = t.get(i).ok_or_else(|| AttackError::Input(format!("index {i}")))?;
        out.push(LinearRelation::between(known, &c)?.apply(m));
    }
    Ok(ArrayD::from_shape_vec(IxDyn(t.shape()), out).expect("shape matches"))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::{KeyOptions, SecretKey};

    #[test]
    fn one_known_pair_decrypts_another() {
        let key = SecretKey::from_seed(21, KeyOptions::default()).unwrap();
        let (c1, c2) = (key.encrypt(0.4).unwrap(), key.encrypt(-0.7).unwrap());
        let rel = LinearRelation::between(&c1, &c2).unwrap();
        assert!((rel.apply(0.4) + 0.7).abs() < 1e-12);
        assert!(rel.residual < 1e-14);
        let other = SecretKey::from_seed(22, KeyOptions::default()).unwrap().encrypt(0.1).unwrap();
        assert!(LinearRelation::between(&c1, &other).unwrap().residual > 1e-3);
    }
}
