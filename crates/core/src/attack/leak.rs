//! Attack 5: zero and equality tests through determinants — no key, no eigenbasis.
//!
//! `det(C − b·I) = (m − b)·(r − b)` for any public `b`, so the determinant vanishes iff `m = b` (or, with
//! probability ~0 for a continuous random lane, `r = b`). With `b = 0` it reveals which values are zero; with
//! `b` = the background level of an image it draws the **ink mask** of an encrypted digit; on a difference
//! `det(C₁ − C₂) = (m₁ − m₂)·(r₁ − r₂)` it tests whether two encrypted values are equal.
//!
//! The test looks at the smaller eigenvalue of `C − b·I` (computed as `det / λ_big`, no cancellation)
//! relative to the size of the matrix: `|λ_small| ≤ rel_tol·max(‖C − b·I‖_F, ‖C‖_F)`. Rounding makes `λ_small`
//! of a true zero about `ε·κ(S)·‖C‖`, so [`DEFAULT_REL_TOL`] (`1e-4`) suits `f32` planes up to `κ ≈ 100`; a nonzero
//! value `|m − b|` is detected when it exceeds `rel_tol·κ·max(|m − b|, |r − b|)`.

use ndarray::{ArrayD, IxDyn};

use crate::cipher::Ciphertext;
use crate::real::Real;
use crate::tensor::EncryptedTensor;

/// Default relative tolerance of the zero test.
pub const DEFAULT_REL_TOL: f64 = 1e-4;

/// The outcome of a zero test on one ciphertext.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct ZeroTest {
    /// `det(C − b·I)`.
    pub det: f64,
    /// The eigenvalue of `C − b·I` closest to zero.
    pub smallest: f64,
    /// `max(‖C − b·I‖_F, ‖C‖_F)`: the size rounding errors scale with.
    pub scale: f64,
    /// Whether a lane equals `b` within the tolerance.
    pub is_zero: bool,
}

/// Does `c` encrypt `b` (or has its random lane `b`)? `b = 0` is the zero test.
pub fn zero_test(c: &Ciphertext, b: f64, rel_tol: f64) -> ZeroTest {
    let q = c.shift(-b);
    let [[a, x], [y, d]] = q.0;
    let det = a * d - x * y;
    // Rounding in the planes scales with the entries of C itself (not of C − b·I, which is tiny when both
    // lanes are near b).
    let norm_c = c.0.iter().flatten().map(|v| v * v).sum::<f64>().sqrt();
    let scale = (a * a + x * x + y * y + d * d).sqrt().max(norm_c);
    let mid = 0.5 * (a + d);
    let disc = (0.5 * (a - d)).powi(2) + x * y;
    let delta = disc.max(0.0).sqrt();
    let big = if mid >= 0.0 { mid + delta } else { mid - delta };
    let smallest = if big != 0.0 { det / big } else { 0.0 };
    ZeroTest { det, smallest, scale, is_zero: smallest.abs() <= rel_tol * scale }
}

/// Do `c1` and `c2` encrypt the same value (or have equal random lanes)? The zero test of `C₁ − C₂`.
pub fn equality_test(c1: &Ciphertext, c2: &Ciphertext, rel_tol: f64) -> ZeroTest {
    zero_test(&(*c1 - *c2), 0.0, rel_tol)
}

/// The ink mask of an encrypted image: `true` where the value differs from the public `background`
/// (e.g. 0 for black, or the normalised black level), `false` where it equals it — from determinants only.
pub fn ink_mask<F: Real>(t: &EncryptedTensor<F>, background: f64, rel_tol: f64) -> ArrayD<bool> {
    let out: Vec<bool> =
        (0..t.len()).map(|i| t.get(i).is_some_and(|c| !zero_test(&c, background, rel_tol).is_zero)).collect();
    ArrayD::from_shape_vec(IxDyn(t.shape()), out).expect("shape matches")
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::{KeyOptions, SecretKey};

    #[test]
    fn zero_and_equality() {
        let key = SecretKey::from_seed(41, KeyOptions::default()).unwrap();
        assert!(zero_test(&key.encrypt_lanes(0.0, 0.7), 0.0, DEFAULT_REL_TOL).is_zero);
        assert!(!zero_test(&key.encrypt_lanes(1.0 / 255.0, 0.7), 0.0, DEFAULT_REL_TOL).is_zero);
        assert!(zero_test(&key.encrypt_lanes(0.3, -0.2), 0.3, DEFAULT_REL_TOL).is_zero);
        let (a, b) = (key.encrypt_lanes(0.5, 0.1), key.encrypt_lanes(0.5, -0.9));
        assert!(equality_test(&a, &b, DEFAULT_REL_TOL).is_zero);
        assert!(!equality_test(&a, &key.encrypt_lanes(0.6, -0.9), DEFAULT_REL_TOL).is_zero);
    }
}
