//! Attack 2: the eigenbasis shared by every ciphertext under one key, found from ciphertexts alone.
//!
//! Every ciphertext under a key is `C = m·P + r·(I − P)` with the same rank-1 projector `P = s₀·t₀ᵀ`
//! (`s₀` the first column of `S`, `t₀ᵀ` the first row of `S⁻¹`). Its traceless part is therefore
//! `C − (trace C / 2)·I = (m − r)·D` with the same `D = P − I/2` for all of them — a single direction in the
//! 3-dimensional space of traceless 2x2 matrices, with `det D = −1/4` (eigenvalues `±1/2`).
//!
//! [`Eigenbasis::estimate`] takes the dominant direction of the traceless parts of all given ciphertexts
//! (power iteration on their 3x3 Gram matrix, in the Frobenius metric, accumulated in `f64`), scales it to
//! `det D = −1/4`, and then splits every ciphertext into its two lanes:
//! `lane₁ = trace(P·C)` and `lane₂ = trace((I − P)·C)`. This is the textbook "eigenvector" attack
//! (`(C·v)ᵢ / vᵢ` for an eigenvector `v`) written without divisions: it is exact for ciphertexts with equal
//! lanes (`m = r` makes `C = m·I`, and any projector of trace 1 reads `m`), needs no per-element
//! eigen-decomposition, and weights every ciphertext by its lane gap, so nearly-equal lanes cannot spoil the
//! estimate. The sign of `D` is arbitrary: which lane is the message is one bit for the whole key, settled in
//! [`crate::attack::lane`].
//!
//! If **every** given ciphertext has equal lanes (`m = r` everywhere, an event of probability zero with a
//! continuous random lane, but possible for tiny inputs), the direction is undetermined; the basis is then
//! flagged [`Eigenbasis::is_degenerate`] and still decrypts those ciphertexts exactly (to `trace/2`), but
//! should be re-estimated from another ciphertext under the same key before it is used on others.

use ndarray::{ArrayD, IxDyn};

use crate::attack::error::Result;
use crate::cipher::Ciphertext;
use crate::error::Error;
use crate::key::{ABSOLUTE_MAX_CONDITION, NoiseRange, SecretKey};
use crate::mat2::Mat2;
use crate::real::Real;
use crate::tensor::EncryptedTensor;

/// One of the two lanes of a ciphertext, relative to an [`Eigenbasis`] (whose orientation is arbitrary).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Lane {
    /// `trace(P·C)`.
    First,
    /// `trace((I − P)·C)`.
    Second,
}

impl Lane {
    /// The other lane.
    pub fn other(self) -> Self {
        match self {
            Self::First => Self::Second,
            Self::Second => Self::First,
        }
    }

    /// `0` for [`Lane::First`], `1` for [`Lane::Second`].
    pub fn index(self) -> usize {
        match self {
            Self::First => 0,
            Self::Second => 1,
        }
    }
}

/// The eigenbasis of a key, recovered without the key: the projector `P` onto one lane.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Eigenbasis {
    projector: Mat2,
    degenerate: bool,
    spread: f64,
    support: usize,
}

/// Traceless part `((c₀₀ − c₁₁)/2, c₀₁, c₁₀)` in Frobenius coordinates `(√2·a, b, c)`.
#[inline]
fn traceless(c00: f64, c01: f64, c10: f64, c11: f64) -> [f64; 3] {
    [std::f64::consts::FRAC_1_SQRT_2 * (c00 - c11), c01, c10]
}

#[derive(Default)]
struct Gram {
    m: [[f64; 3]; 3],
    max_traceless: f64,
    max_entry: f64,
    count: usize,
}

impl Gram {
    #[inline]
    fn add(&mut self, c00: f64, c01: f64, c10: f64, c11: f64) {
        let u = traceless(c00, c01, c10, c11);
        for (i, row) in self.m.iter_mut().enumerate() {
            for (j, x) in row.iter_mut().enumerate() {
                *x += u[i] * u[j];
            }
        }
        let n = (u[0] * u[0] + u[1] * u[1] + u[2] * u[2]).sqrt();
        self.max_traceless = self.max_traceless.max(n);
        self.max_entry = self.max_entry.max(c00.abs().max(c01.abs()).max(c10.abs()).max(c11.abs()));
        self.count += 1;
    }

    fn finish(self, epsilon: f64) -> Result<Eigenbasis> {
        if !self.m.iter().flatten().all(|x| x.is_finite()) {
            return Err(Error::NonFinite { op: "eigenbasis", index: 0 }.into());
        }
        // All ciphertexts scalar up to rounding: the direction is undetermined.
        if self.count == 0 || self.max_traceless <= 16.0 * epsilon * self.max_entry {
            return Ok(Eigenbasis {
                projector: [[1.0, 0.0], [0.0, 0.0]],
                degenerate: true,
                spread: 0.0,
                support: self.count,
            });
        }
        let m = self.m;
        let start = (0..3).max_by(|&i, &j| m[i][i].total_cmp(&m[j][j])).unwrap_or(0);
        let mut v = [m[0][start], m[1][start], m[2][start]];
        let mut lambda = 0.0;
        for _ in 0..200 {
            let w: [f64; 3] = std::array::from_fn(|i| m[i][0] * v[0] + m[i][1] * v[1] + m[i][2] * v[2]);
            let norm = (w[0] * w[0] + w[1] * w[1] + w[2] * w[2]).sqrt();
            if norm == 0.0 {
                break;
            }
            let next = w.map(|x| x / norm);
            let change = (0..3).map(|i| (next[i] - v[i]).abs()).fold(0.0, f64::max);
            v = next;
            lambda = norm;
            if change < 1e-15 {
                break;
            }
        }
        let total = m[0][0] + m[1][1] + m[2][2];
        let spread = ((total - lambda).max(0.0) / lambda).sqrt();
        let (a, b, c) = (v[0] * std::f64::consts::FRAC_1_SQRT_2, v[1], v[2]);
        let q = a * a + b * c;
        // A real ciphertext direction has a² + bc > 0 (real, distinct eigenvalues ±1/2 after scaling);
        // for ill-conditioned keys it is small (~1/κ²) but positive.
        if !(q > 0.0 && q.is_finite()) {
            return Err(Error::NotACiphertext { index: 0, discriminant: q }.into());
        }
        // Scale to det D = −(a² + bc) = −1/4, with a fixed orientation (largest component positive).
        let mut s = 0.5 / q.sqrt();
        let largest = [a, b, c].into_iter().max_by(|x, y| x.abs().total_cmp(&y.abs())).unwrap_or(1.0);
        if largest < 0.0 {
            s = -s;
        }
        let (a, b, c) = (a * s, b * s, c * s);
        Ok(Eigenbasis { projector: [[0.5 + a, b], [c, 0.5 - a]], degenerate: false, spread, support: self.count })
    }
}

impl Eigenbasis {
    /// Estimates the eigenbasis from every ciphertext of the given tensors, which must all be under one key.
    ///
    /// Fails only when the dominant direction cannot come from ciphertexts (complex eigenvalues) or the
    /// planes hold non-finite values. Check [`Eigenbasis::spread`] to see whether the tensors really share
    /// one key.
    pub fn estimate<F: Real>(tensors: &[&EncryptedTensor<F>]) -> Result<Self> {
        let mut g = Gram::default();
        for t in tensors {
            let [p0, p1, p2, p3] = t.plane_slices();
            for i in 0..t.len() {
                g.add(p0[i].as_f64(), p1[i].as_f64(), p2[i].as_f64(), p3[i].as_f64());
            }
        }
        g.finish(F::epsilon().as_f64())
    }

    /// Estimates the eigenbasis from individual ciphertexts (one suffices if its lanes differ).
    pub fn from_ciphertexts(cs: &[Ciphertext]) -> Result<Self> {
        let mut g = Gram::default();
        for c in cs {
            let [[a, b], [d, e]] = c.0;
            g.add(a, b, d, e);
        }
        g.finish(f64::EPSILON)
    }

    /// The basis whose first lane is the range of the given rank-1 projector (trace 1, `P² = P`).
    pub fn from_projector(projector: Mat2) -> Self {
        Self { projector, degenerate: false, spread: 0.0, support: 1 }
    }

    /// The same basis with its lanes swapped.
    pub fn swapped(&self) -> Self {
        Self { projector: self.projector(Lane::Second), ..*self }
    }

    /// The projector onto `lane`: `P` or `I − P`.
    pub fn projector(&self, lane: Lane) -> Mat2 {
        let p = self.projector;
        match lane {
            Lane::First => p,
            Lane::Second => [[1.0 - p[0][0], -p[0][1]], [-p[1][0], 1.0 - p[1][1]]],
        }
    }

    /// Whether every ciphertext it was estimated from had equal lanes (the direction is then arbitrary).
    pub fn is_degenerate(&self) -> bool {
        self.degenerate
    }

    /// How far the traceless parts are from one common direction: `√(λ₂ + λ₃)/√λ₁` of their Gram matrix.
    /// Near rounding (`~1e-7` for `f32` planes, `~1e-15` for `f64`) for ciphertexts under one key; of order
    /// one for a mixture of keys.
    pub fn spread(&self) -> f64 {
        self.spread
    }

    /// Number of ciphertexts the estimate used.
    pub fn support(&self) -> usize {
        self.support
    }

    /// The two eigenvectors (unit length), `[v₁, v₂]`: the columns of the key `S` up to scale and order.
    pub fn eigenvectors(&self) -> [[f64; 2]; 2] {
        [column_of(self.projector(Lane::First)), column_of(self.projector(Lane::Second))]
    }

    /// The value of `c` on `lane`: `trace(P·C)`.
    #[inline]
    pub fn value(&self, c: &Ciphertext, lane: Lane) -> f64 {
        let p = self.projector(lane);
        let c = c.0;
        p[0][0] * c[0][0] + p[0][1] * c[1][0] + p[1][0] * c[0][1] + p[1][1] * c[1][1]
    }

    /// Both lanes of every element: `[lane₁, lane₂]`, each with the tensor's shape.
    pub fn lanes<F: Real>(&self, t: &EncryptedTensor<F>) -> [ArrayD<f64>; 2] {
        [self.lane(t, Lane::First), self.lane(t, Lane::Second)]
    }

    /// One lane of every element.
    pub fn lane<F: Real>(&self, t: &EncryptedTensor<F>, lane: Lane) -> ArrayD<f64> {
        let p = self.projector(lane);
        let [p0, p1, p2, p3] = t.plane_slices();
        let out: Vec<f64> = (0..t.len())
            .map(|i| {
                p[0][0] * p0[i].as_f64()
                    + p[1][0] * p1[i].as_f64()
                    + p[0][1] * p2[i].as_f64()
                    + p[1][1] * p3[i].as_f64()
            })
            .collect();
        ArrayD::from_shape_vec(IxDyn(t.shape()), out).expect("shape matches")
    }

    /// An equivalent secret key whose message lane is `lane`: `S' = [v_lane, v_other]` (unit columns).
    ///
    /// It decrypts every ciphertext under the original key to its `lane` value — and encrypts new ones
    /// that the key owner decrypts correctly. `noise` is the range its own encryptions draw from (the
    /// original range is not observable exactly).
    pub fn key(&self, lane: Lane, noise: NoiseRange) -> Result<SecretKey> {
        let (a, b) = (column_of(self.projector(lane)), column_of(self.projector(lane.other())));
        Ok(SecretKey::from_matrix([[a[0], b[0]], [a[1], b[1]]], noise, ABSOLUTE_MAX_CONDITION)?)
    }
}

/// The unit-length column of largest norm of a rank-1 matrix: its range.
fn column_of(p: Mat2) -> [f64; 2] {
    let c0 = [p[0][0], p[1][0]];
    let c1 = [p[0][1], p[1][1]];
    let (n0, n1) = (c0[0].hypot(c0[1]), c1[0].hypot(c1[1]));
    let (c, n) = if n0 >= n1 { (c0, n0) } else { (c1, n1) };
    if n == 0.0 { [1.0, 0.0] } else { [c[0] / n, c[1] / n] }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::{KeyOptions, SecretKey};

    #[test]
    fn one_ciphertext_gives_the_basis() {
        let key = SecretKey::from_seed(11, KeyOptions::default()).unwrap();
        let basis = Eigenbasis::from_ciphertexts(&[key.encrypt_lanes(0.3, -0.6)]).unwrap();
        let other = key.encrypt_lanes(0.9, 0.1);
        let vals = [basis.value(&other, Lane::First), basis.value(&other, Lane::Second)];
        assert!(vals.iter().any(|v| (v - 0.9).abs() < 1e-12), "{vals:?}");
        assert!(vals.iter().any(|v| (v - 0.1).abs() < 1e-12), "{vals:?}");
    }

    #[test]
    fn scalar_ciphertexts_are_degenerate_but_exact() {
        let key = SecretKey::from_seed(12, KeyOptions::default()).unwrap();
        let c = key.encrypt_lanes(0.5, 0.5);
        let basis = Eigenbasis::from_ciphertexts(&[c]).unwrap();
        assert!(basis.is_degenerate());
        assert!((basis.value(&c, Lane::First) - 0.5).abs() < 1e-12);
    }
}
