//! The key-free reference element of ciphertexts under one key.
//!
//! All ciphertexts under one key commute: `C = α·I + β·X̂`, where `X̂` is the traceless part of any
//! ciphertext whose two lanes differ, normalised. Whoever holds ciphertexts can therefore write them all in
//! the basis `{I, X̂}` without the key — the structure the encrypted trainer (`more-enctrain`, one reference
//! per data set) and the coefficient-form evaluator (`more-nn`, one per sample) compute in, and the one the
//! shared-eigenbasis attack exploits. Choosing the reference **uses the 2x2 structure**.
//!
//! The rule, in one place: the reference is the element whose traceless part is largest (the largest
//! `|m − r|`, so the least relative rounding), normalised to Frobenius norm 1.

use crate::mat2::Mat2;
use crate::real::Real;

/// The result of [`largest_traceless`].
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Traceless {
    /// Index of the element with the largest traceless part (0 when there are none).
    pub index: usize,
    /// Its squared traceless Frobenius norm ([`traceless_norm2`]).
    pub traceless2: f64,
    /// The largest squared Frobenius norm of any element (the scale of the data).
    pub largest2: f64,
}

/// `‖C − (tr C / 2)·I‖²_F` of `C = [[a, b], [c, d]]`: `2t² + b² + c²` with `t = (a − d)/2`.
#[inline]
pub fn traceless_norm2(a: f64, b: f64, c: f64, d: f64) -> f64 {
    let t = 0.5 * (a - d);
    2.0 * t * t + b * b + c * c
}

/// Scans elements given as four planes (`[c00, c01, c10, c11]`, equal lengths): the element with the
/// largest traceless part (the first of equals) and the largest element norm. `None` when an element is
/// not finite.
pub fn largest_traceless<F: Real>([p0, p1, p2, p3]: [&[F]; 4]) -> Option<Traceless> {
    let mut out = Traceless { index: 0, traceless2: 0.0, largest2: 0.0 };
    for i in 0..p0.len() {
        let (a, b, c, d) = (p0[i].as_f64(), p1[i].as_f64(), p2[i].as_f64(), p3[i].as_f64());
        let norm2 = a * a + b * b + c * c + d * d;
        if !norm2.is_finite() {
            return None;
        }
        out.largest2 = out.largest2.max(norm2);
        let traceless2 = traceless_norm2(a, b, c, d);
        if traceless2 > out.traceless2 {
            out.traceless2 = traceless2;
            out.index = i;
        }
    }
    Some(out)
}

/// The traceless part of `c` normalised to Frobenius norm 1, `X̂`, and `q = −det X̂` (so `X̂² = q·I`; the
/// eigenvalues of `X̂` are `±√q`, real and distinct when `q > 0`). `None` when `c` is a multiple of the
/// identity or not finite.
pub fn unit_traceless(c: Mat2) -> Option<(Mat2, f64)> {
    let norm = traceless_norm2(c[0][0], c[0][1], c[1][0], c[1][1]).sqrt();
    if !(norm.is_finite() && norm > 0.0) {
        return None;
    }
    let t = 0.5 * (c[0][0] - c[1][1]);
    let x = [[t / norm, c[0][1] / norm], [c[1][0] / norm, -t / norm]];
    Some((x, x[0][0] * x[0][0] + x[0][1] * x[1][0]))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::{KeyOptions, SecretKey};

    #[test]
    fn the_reference_of_ciphertexts_squares_to_a_multiple_of_the_identity() {
        let key = SecretKey::from_seed(3, KeyOptions::default()).unwrap();
        let cs: Vec<_> = [0.5, -2.0, 0.1].iter().map(|&m| key.encrypt(m).unwrap().0).collect();
        let planes: [Vec<f64>; 4] = std::array::from_fn(|k| cs.iter().map(|c| c[k / 2][k % 2]).collect());
        let pick = largest_traceless([&planes[0][..], &planes[1], &planes[2], &planes[3]]).unwrap();
        let (x, q) = unit_traceless(cs[pick.index]).unwrap();
        let sq = crate::mat2::mul(&x, &x);
        assert!((sq[0][0] - q).abs() < 1e-12 && (sq[1][1] - q).abs() < 1e-12 && sq[0][1].abs() < 1e-12);
        assert!(q > 0.0);
        // Every ciphertext under the key is α·I + β·X̂: its traceless part is parallel to X̂.
        for c in &cs {
            let (y, _) = unit_traceless(*c).unwrap();
            let dot = 2.0 * y[0][0] * x[0][0] + y[0][1] * x[0][1] + y[1][0] * x[1][0];
            assert!((dot.abs() - 1.0).abs() < 1e-9, "{dot}");
        }
        assert!(unit_traceless([[2.0, 0.0], [0.0, 2.0]]).is_none());
        assert!(largest_traceless([&[f64::NAN][..], &[0.0], &[0.0], &[0.0]]).is_none());
        let empty: [&[f32]; 4] = [&[], &[], &[], &[]];
        assert_eq!(largest_traceless(empty).unwrap().traceless2, 0.0);
    }
}
