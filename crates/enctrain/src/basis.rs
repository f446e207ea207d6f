//! The public reference basis `{I, X̂}` in which every ciphertext under one key is written.
//!
//! All MORE ciphertexts under one key commute: `C = S·diag(m, r)·S⁻¹ = α·I + β·X̂` with
//! `X̂ ∝ S·diag(1, −1)·S⁻¹`. Any single ciphertext with `m ≠ r` gives `X̂` **without the key**: its
//! traceless part `C − (tr C / 2)·I`, normalised. This is a key-free change of basis — and it uses the 2x2
//! structure: it is the same shared-eigenbasis structure that the ciphertext-only attack exploits
//! (the shared-eigenbasis attack of `more_core::attack`, `docs/attacks.md`). Everything computed in this
//! basis is computed from ciphertexts alone.

use more_core::mat2::Mat2;
use more_core::reference::{largest_traceless, unit_traceless};
use more_core::{EncryptedTensor, Real};
use serde::{Deserialize, Serialize};

use crate::error::{Error, Result};

/// How many ciphertexts [`Basis::from_ciphertexts`] inspects to choose the reference.
pub const REFERENCE_SAMPLE: usize = 65_536;

/// A public reference `X̂` (traceless, Frobenius norm 1) and `q = −det X̂ > 0`, so `X̂² = q·I` and the
/// eigenvalues of `X̂` are `±√q`.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct Basis {
    /// The reference matrix `X̂`.
    pub xhat: Mat2,
    /// `q = −det X̂`.
    pub q: f64,
}

impl Basis {
    /// A basis from a reference matrix: takes its traceless part and normalises it. Fails when the
    /// matrix has no two distinct real eigenvalues.
    pub fn from_matrix(c: Mat2) -> Result<Self> {
        let (mut xhat, q) = unit_traceless(c)
            .ok_or_else(|| Error::NoReference("the reference is a multiple of the identity".into()))?;
        // A sign convention, so that one key and one data set give one basis up to rounding.
        let lead = if xhat[0][0].abs() >= xhat[0][1].abs().max(xhat[1][0].abs()) {
            xhat[0][0]
        } else if xhat[0][1].abs() >= xhat[1][0].abs() {
            xhat[0][1]
        } else {
            xhat[1][0]
        };
        if lead < 0.0 {
            xhat = [[-xhat[0][0], -xhat[0][1]], [-xhat[1][0], -xhat[1][1]]];
        }
        if !(q.is_finite() && q > 1e-12) {
            return Err(Error::NoReference(format!("the reference has no two distinct real eigenvalues (q = {q:e})")));
        }
        Ok(Self { xhat, q })
    }

    /// Chooses the reference key-free from ciphertexts (`more_core::reference`): among the first
    /// [`REFERENCE_SAMPLE`] elements, the one whose traceless part is largest.
    pub fn from_ciphertexts<F: Real>(c: &EncryptedTensor<F>) -> Result<Self> {
        let n = c.len().min(REFERENCE_SAMPLE);
        let planes = c.plane_slices().map(|p| &p[..n]);
        let pick = largest_traceless(planes)
            .ok_or_else(|| Error::NoReference("a ciphertext holds a non-finite value".into()))?;
        let i = pick.index;
        let [p0, p1, p2, p3] = planes;
        Self::from_matrix([[p0[i].as_f64(), p1[i].as_f64()], [p2[i].as_f64(), p3[i].as_f64()]])
    }

    /// `√q`: the eigenvalues of `X̂` are `±√q`. Computing it uses the 2x2 structure.
    pub fn sqrt_q(&self) -> f64 {
        self.q.sqrt()
    }

    /// Coefficients `(α, β)` of one 2x2 matrix: `α = tr/2`, `β` the least-squares projection of the
    /// traceless part on `X̂`, and the relative residual `‖C − αI − βX̂‖_F / ‖C‖_F`.
    #[inline]
    pub fn coefficients(&self, c: [f64; 4]) -> (f64, f64, f64) {
        let x = &self.xhat;
        let alpha = (c[0] + c[3]) / 2.0;
        let t = (c[0] - c[3]) / 2.0;
        let beta = 2.0 * t * x[0][0] + c[1] * x[0][1] + c[2] * x[1][0];
        let r0 = t - beta * x[0][0];
        let r1 = c[1] - beta * x[0][1];
        let r2 = c[2] - beta * x[1][0];
        let res2 = 2.0 * r0 * r0 + r1 * r1 + r2 * r2;
        let norm2 = c.iter().map(|v| v * v).sum::<f64>();
        let residual = if norm2 > 0.0 { (res2 / norm2).sqrt() } else { 0.0 };
        (alpha, beta, residual)
    }

    /// The matrix `α·I + β·X̂`.
    #[inline]
    pub fn matrix(&self, alpha: f64, beta: f64) -> Mat2 {
        let x = &self.xhat;
        [[alpha + beta * x[0][0], beta * x[0][1]], [beta * x[1][0], alpha + beta * x[1][1]]]
    }

    /// True when two bases are the same reference up to rounding.
    pub fn same_as(&self, other: &Self) -> bool {
        let d: f64 = (0..4).map(|k| (self.xhat[k / 2][k % 2] - other.xhat[k / 2][k % 2]).abs()).sum();
        d <= 1e-9
    }
}
