//! Attack 1: one ciphertext leaks its two eigenvalues, the message and its random partner.
//!
//! `C = S·diag(m, r)·S⁻¹` is similar to `diag(m, r)`, so `trace C = m + r` and `det C = m·r` — both public.
//! The eigenvalues are the roots of `λ² − (m + r)·λ + m·r`. They are computed as `c ± δ` with
//! `c = (c₀₀ + c₁₁)/2` and `δ² = ((c₀₀ − c₁₁)/2)² + c₀₁·c₁₀` rather than from `trace² − 4·det`, which cancels
//! catastrophically when `m ≈ r`: written this way `δ` is computed from the small off-diagonal part and
//! stays accurate, and nearly equal lanes (`m = r` makes `C = m·I`) come out equal.

use crate::attack::error::Result;
use crate::cipher::Ciphertext;
use crate::error::Error;

/// Relative tolerance on a negative discriminant that is still rounding (the lanes are equal).
const DISCRIMINANT_TOLERANCE: f64 = 1e-6;

/// The unordered pair `{m, r}` read from one ciphertext.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct LanePair {
    /// `trace C = m + r`.
    pub trace: f64,
    /// `det C = m·r`.
    pub det: f64,
    /// The larger eigenvalue, `max(m, r)`.
    pub high: f64,
    /// The smaller eigenvalue, `min(m, r)`.
    pub low: f64,
}

impl LanePair {
    /// Half the distance between the lanes, `|m − r|/2`.
    pub fn half_gap(&self) -> f64 {
        0.5 * (self.high - self.low)
    }

    /// Whether `x` is one of the two lanes, within `tol`.
    pub fn contains(&self, x: f64, tol: f64) -> bool {
        (self.high - x).abs() <= tol || (self.low - x).abs() <= tol
    }

    /// Given one lane (e.g. a known plaintext), the other one.
    pub fn partner_of(&self, x: f64) -> f64 {
        if (self.high - x).abs() <= (self.low - x).abs() { self.low } else { self.high }
    }
}

/// The eigenvalues `{m, r}` of one ciphertext, from its trace and determinant.
///
/// Fails with [`Error::NotACiphertext`] when the matrix has complex eigenvalues beyond rounding (no
/// MORE ciphertext does).
pub fn eigenvalues(c: &Ciphertext) -> Result<LanePair> {
    let [[c00, c01], [c10, c11]] = c.0;
    let mid = 0.5 * (c00 + c11);
    let half_diff = 0.5 * (c00 - c11);
    let mut disc = half_diff * half_diff + c01 * c10;
    if disc.is_nan() {
        return Err(Error::NotACiphertext { index: 0, discriminant: disc }.into());
    }
    if disc < 0.0 {
        let scale = half_diff.abs() + c01.abs() + c10.abs();
        if disc < -DISCRIMINANT_TOLERANCE * scale * scale {
            return Err(Error::NotACiphertext { index: 0, discriminant: disc }.into());
        }
        disc = 0.0;
    }
    let delta = disc.sqrt();
    Ok(LanePair { trace: c.trace(), det: c.det(), high: mid + delta, low: mid - delta })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::{KeyOptions, SecretKey};

    #[test]
    fn reads_both_lanes() {
        let key = SecretKey::from_seed(3, KeyOptions::default()).unwrap();
        let c = key.encrypt_lanes(0.25, -0.75);
        let p = eigenvalues(&c).unwrap();
        assert!((p.high - 0.25).abs() < 1e-14 && (p.low + 0.75).abs() < 1e-14);
        assert!((p.partner_of(0.25) + 0.75).abs() < 1e-14);
    }

    #[test]
    fn equal_lanes_stay_equal() {
        let key = SecretKey::from_seed(4, KeyOptions::default()).unwrap();
        let c = key.encrypt_lanes(0.5, 0.5 + 1e-12);
        let p = eigenvalues(&c).unwrap();
        assert!((p.high - 0.5).abs() < 1e-11 && (p.low - 0.5).abs() < 1e-11);
    }

    #[test]
    fn rejects_rotations() {
        let c = Ciphertext([[0.0, -1.0], [1.0, 0.0]]);
        assert!(matches!(eigenvalues(&c), Err(crate::attack::AttackError::Scheme(Error::NotACiphertext { .. }))));
    }
}
