//! Coefficient form: an encrypted sample as two planes `(α, β)` instead of four — **uses the 2x2
//! structure**.
//!
//! Every ciphertext under one key is `C = S·diag(m, r)·S⁻¹`, so all of them lie in one two-dimensional
//! commutative algebra: `C = α·I + β·J` with `α = (m + r)/2`, `β = ±(m − r)/2` and one traceless `J`
//! shared by the whole key, normalised here so that `J² = I` (`J = ±S·diag(1, −1)·S⁻¹`). `J` is found from
//! the ciphertexts alone, without the key: the traceless part of any element with `m ≠ r`, scaled. The
//! evaluator picks, per sample, the element whose traceless part is largest (the least relative
//! rounding), so all-black or constant images (whose random lanes still differ from the message) and
//! nearly equal lanes elsewhere are harmless; a sample whose every element is a multiple of `I` (a
//! non-hiding "plaintext-like" input, `β = 0` everywhere) gets `J = diag(1, −1)`.
//!
//! Reading `J` is the shared-eigenbasis structure that the ciphertext-only attack exploits
//! (`more_core::attack`, `docs/attacks.md`): with `J` in hand, `α ± β` are the eigenvalues `{m, r}`, i.e.
//! the plaintext and its random partner (in an order the evaluator does not know). The conversion is
//! therefore marked as using the 2x2 structure even for a network whose layers are all ring-only.
//!
//! In this form a layer with plaintext weights is linear in `(α, β)`: dense, convolution and pooling
//! layers run on the two planes stacked as a batch twice as large, the bias `b·I` only touches `α`.
//! An elementwise function acts on the eigenvalues: `f(C) = α'·I + β'·J` with
//! `α' = (f(α + β) + f(α − β))/2`, `β' = (f(α + β) − f(α − β))/2` — no division, so no cancellation when
//! `β → 0` (nearly equal lanes) beyond the rounding of `f` itself. Because `J² = I` for every sample, the
//! layers never need `J`: samples of different keys run in one batch, each converted with its own `J`.

use std::ops::Range;

use more_core::EncryptedTensor;
use more_core::reference::{largest_traceless, unit_traceless};

use crate::error::{Error, Result};

/// Largest relative residual `‖C − α·I − β·J‖_F / ‖C‖_F` accepted for an element: `f32` rounding of a
/// genuine ciphertext stays near `1e-6`; planes that are not ciphertexts of the sample's key give
/// residuals of order 1.
pub const SPAN_TOLERANCE: f64 = 1e-3;

/// A sample whose largest traceless part is below this fraction of its largest element (Frobenius
/// norms) is treated as plaintext-like: `J = diag(1, −1)`, so the eigenvalues of its elements move by at
/// most this fraction of the sample's scale (such lanes are equal to `f32` rounding anyway). Residuals
/// below this fraction of the sample's largest element are also always accepted.
pub const SCALAR_TOLERANCE: f64 = 1e-4;

/// Smallest `q = −det X̂` accepted for the unit-norm reference `X̂` (`J = X̂/√q`). A key of condition
/// number `κ` gives `q ≥ 1/(2κ²)`, so this admits `κ` up to about 2,000; a smaller `q` means the reference
/// has complex or (nearly) equal eigenvalues: not a ciphertext.
pub const MIN_REFERENCE_Q: f64 = 1e-7;

/// The shared traceless `J` of one sample (`J² = I`): `[[j00, j01], [j10, −j00]]`.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Reference {
    /// `J[0][0]` (and `−J[1][1]`).
    pub j00: f32,
    /// `J[0][1]`.
    pub j01: f32,
    /// `J[1][0]`.
    pub j10: f32,
}

impl Reference {
    /// The reference of a plaintext-like sample: `diag(1, −1)`.
    pub const DIAGONAL: Reference = Reference { j00: 1.0, j01: 0.0, j10: 0.0 };
}

/// Samples `samples` of `x` (`[4, N, ...]`) in coefficient form: `[α of every sample; β of every sample]`
/// (`2·len·per_sample` values, sample-major within each block) and each sample's reference. Uses the 2x2
/// structure (see the module docs).
///
/// Errors: [`Error::NonFinite`] for NaN/±∞ planes, [`Error::NotACiphertext`] when a sample's reference
/// has no two distinct real eigenvalues, [`Error::NotOneKey`] when an element lies outside its sample's
/// algebra (planes that are not ciphertexts of one key).
pub fn to_coefficients(x: &EncryptedTensor<f32>, samples: Range<usize>) -> Result<(Vec<f32>, Vec<Reference>)> {
    let n = x.shape().first().copied().unwrap_or(0);
    if samples.end > n || samples.start > samples.end {
        return Err(Error::shape("coefficient form", format!("samples {samples:?} of {n}"), x.shape()));
    }
    let per = x.len().checked_div(n).unwrap_or(0);
    let len = samples.len();
    let [p0, p1, p2, p3] = x.plane_slices();
    let mut out = vec![0.0f32; 2 * len * per];
    let (alpha, beta) = out.split_at_mut(len * per);
    let mut refs = Vec::with_capacity(len);
    for (k, s) in samples.enumerate() {
        let r = s * per..(s + 1) * per;
        let planes = [&p0[r.clone()], &p1[r.clone()], &p2[r.clone()], &p3[r]];
        let (reference, largest2) = sample_reference(planes)?;
        let (a, b) = (&mut alpha[k * per..(k + 1) * per], &mut beta[k * per..(k + 1) * per]);
        project(planes, reference, SCALAR_TOLERANCE * SCALAR_TOLERANCE * largest2, a, b, s)?;
        refs.push(reference);
    }
    Ok((out, refs))
}

/// The reference `J` of one sample, from the element with the largest traceless part, and the squared
/// Frobenius norm of its largest element.
fn sample_reference(planes: [&[f32]; 4]) -> Result<(Reference, f64)> {
    let pick = largest_traceless(planes).ok_or(Error::NonFinite("encrypted input"))?;
    if pick.traceless2 <= SCALAR_TOLERANCE * SCALAR_TOLERANCE * pick.largest2 {
        return Ok((Reference::DIAGONAL, pick.largest2));
    }
    let i = pick.index;
    let c = [[f64::from(planes[0][i]), f64::from(planes[1][i])], [f64::from(planes[2][i]), f64::from(planes[3][i])]];
    let (x, q) = unit_traceless(c).ok_or(Error::NotACiphertext("the coefficient form's reference element"))?;
    if q.is_nan() || q < MIN_REFERENCE_Q {
        return Err(Error::NotACiphertext("the coefficient form's reference element"));
    }
    let root = q.sqrt();
    let j = Reference { j00: (x[0][0] / root) as f32, j01: (x[0][1] / root) as f32, j10: (x[1][0] / root) as f32 };
    Ok((j, pick.largest2))
}

/// `α = tr(C)/2` and `β` the projection of the traceless part on `J`, checking the residual against
/// [`SPAN_TOLERANCE`] of the element's norm, or the absolute `floor2` (squared).
fn project(
    [p0, p1, p2, p3]: [&[f32]; 4],
    j: Reference,
    floor2: f64,
    alpha: &mut [f32],
    beta: &mut [f32],
    sample: usize,
) -> Result<()> {
    let (j00, j01, j10) = (f64::from(j.j00), f64::from(j.j01), f64::from(j.j10));
    // β = ⟨T, J⟩_F / ⟨J, J⟩_F for the traceless part T of C.
    let inv_jj = 1.0 / (2.0 * j00 * j00 + j01 * j01 + j10 * j10);
    let tol2 = SPAN_TOLERANCE * SPAN_TOLERANCE;
    for i in 0..p0.len() {
        let (a, b, c, d) = (f64::from(p0[i]), f64::from(p1[i]), f64::from(p2[i]), f64::from(p3[i]));
        let t = 0.5 * (a - d);
        let be = (2.0 * t * j00 + b * j01 + c * j10) * inv_jj;
        let (r0, r1, r2) = (t - be * j00, b - be * j01, c - be * j10);
        let res2 = 2.0 * r0 * r0 + r1 * r1 + r2 * r2;
        let norm2 = a * a + b * b + c * c + d * d;
        if res2 > tol2 * norm2 + floor2 {
            return Err(Error::NotOneKey { sample, index: i, residual: (res2 / norm2).sqrt() });
        }
        alpha[i] = (0.5 * (a + d)) as f32;
        beta[i] = be as f32;
    }
    Ok(())
}

/// Back to the four-plane wire layout: `coefficients = [α of every sample; β of every sample]` with
/// `per_sample` values each, one reference per sample; returns `[c00 | c01 | c10 | c11]` planes
/// (`4·len·per_sample` values, plane-major) with `C = α·I + β·J`.
pub fn from_coefficients(coefficients: &[f32], refs: &[Reference], per_sample: usize) -> Vec<f32> {
    let m = refs.len() * per_sample;
    let (alpha, beta) = coefficients.split_at(m);
    let mut out = vec![0.0f32; 4 * m];
    let (c00, rest) = out.split_at_mut(m);
    let (c01, rest) = rest.split_at_mut(m);
    let (c10, c11) = rest.split_at_mut(m);
    for (s, j) in refs.iter().enumerate() {
        let r = s * per_sample..(s + 1) * per_sample;
        for i in r {
            let (a, b) = (alpha[i], beta[i]);
            c00[i] = a + b * j.j00;
            c01[i] = b * j.j01;
            c10[i] = b * j.j10;
            c11[i] = a - b * j.j00;
        }
    }
    out
}

/// Coefficients `[α | β]` (two equal halves) to eigenvalue lanes `[α + β | α − β]`, in place.
pub fn to_lanes(data: &mut [f32]) {
    let (a, b) = data.split_at_mut(data.len() / 2);
    for (x, y) in a.iter_mut().zip(b.iter_mut()) {
        let (u, v) = (*x + *y, *x - *y);
        *x = u;
        *y = v;
    }
}

/// Eigenvalue lanes `[λ₁ | λ₂]` back to coefficients `[(λ₁ + λ₂)/2 | (λ₁ − λ₂)/2]`, in place.
pub fn from_lanes(data: &mut [f32]) {
    let (a, b) = data.split_at_mut(data.len() / 2);
    for (x, y) in a.iter_mut().zip(b.iter_mut()) {
        let (u, v) = (0.5 * (*x + *y), 0.5 * (*x - *y));
        *x = u;
        *y = v;
    }
}
