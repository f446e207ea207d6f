//! Single ciphertexts: one real number as one 2x2 matrix.

use std::ops::{Add, Mul, Neg, Sub};

use rand::Rng;

use crate::error::{Error, Result};
use crate::function::ElementFunction;
use crate::key::SecretKey;
use crate::mat2::{self, Mat2};
use crate::spectral;

/// A determinant below `SINGULAR_RTOL · ε · ‖C‖²_F` is rounding noise around zero: the ciphertext has a zero
/// lane and no inverse.
pub const SINGULAR_RTOL: f64 = 64.0;

/// One MORE ciphertext `C = S·diag(m, r)·S⁻¹`, a real 2x2 matrix (row-major).
///
/// `+`, `−`, `·` (matrix product), scaling and shifting by plaintext constants and the inverse use ring
/// operations only. [`Ciphertext::apply`] uses the 2x2 structure (see [`crate::spectral`]).
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Ciphertext(pub Mat2);

impl Ciphertext {
    /// The trivial (non-hiding) encryption of a public constant: `a·I`. Every key decrypts it to `a`.
    pub fn public(a: f64) -> Self {
        Self([[a, 0.0], [0.0, a]])
    }

    /// The matrix.
    pub fn matrix(&self) -> Mat2 {
        self.0
    }

    /// `a·C` — ring-only: decrypts to `a·m`.
    pub fn scale(&self, a: f64) -> Self {
        Self(self.0.map(|row| row.map(|x| a * x)))
    }

    /// `C + a·I` — ring-only: decrypts to `m + a`.
    pub fn shift(&self, a: f64) -> Self {
        let mut c = self.0;
        c[0][0] += a;
        c[1][1] += a;
        Self(c)
    }

    /// `C⁻¹ = adj(C)/det(C)` — ring-only (division by the public scalar `det C`): decrypts to `1/m`.
    /// Fails when `det C = 0`, i.e. when `m = 0` or `r = 0`.
    pub fn inverse(&self) -> Result<Self> {
        let det = mat2::det(&self.0);
        let norm2: f64 = self.0.iter().flatten().map(|x| x * x).sum();
        if det.abs() <= SINGULAR_RTOL * f64::EPSILON * norm2 {
            return Err(Error::Singular { index: 0, det });
        }
        mat2::inverse(&self.0).map(Self).ok_or(Error::Singular { index: 0, det })
    }

    /// `f(C)`, decrypting to `f(m)`. All functions but `Square` use the 2x2 structure.
    pub fn apply(&self, f: ElementFunction) -> Result<Self> {
        if f == ElementFunction::Square {
            return Ok(*self * *self);
        }
        let c = self.0;
        let (alpha, beta) = spectral::coefficients(f, [c[0][0], c[0][1], c[1][0], c[1][1]], 0)?;
        let out = Self([[alpha + beta * c[0][0], beta * c[0][1]], [beta * c[1][0], alpha + beta * c[1][1]]]);
        if mat2::is_finite(&out.0) { Ok(out) } else { Err(Error::NonFinite { op: f.name(), index: 0 }) }
    }

    /// `trace C = m + r` (public: anyone can compute it).
    pub fn trace(&self) -> f64 {
        mat2::trace(&self.0)
    }

    /// `det C = m·r` (public: anyone can compute it).
    pub fn det(&self) -> f64 {
        mat2::det(&self.0)
    }
}

impl Add for Ciphertext {
    type Output = Self;
    /// Ring-only: decrypts to `m₁ + m₂`.
    fn add(self, o: Self) -> Self {
        let (a, b) = (self.0, o.0);
        Self([[a[0][0] + b[0][0], a[0][1] + b[0][1]], [a[1][0] + b[1][0], a[1][1] + b[1][1]]])
    }
}

impl Sub for Ciphertext {
    type Output = Self;
    /// Ring-only: decrypts to `m₁ − m₂`.
    fn sub(self, o: Self) -> Self {
        self + (-o)
    }
}

impl Neg for Ciphertext {
    type Output = Self;
    /// Ring-only: decrypts to `−m`.
    fn neg(self) -> Self {
        self.scale(-1.0)
    }
}

impl Mul for Ciphertext {
    type Output = Self;
    /// Matrix product, ring-only: decrypts to `m₁·m₂` (for ciphertexts under the same key).
    fn mul(self, o: Self) -> Self {
        Self(mat2::mul(&self.0, &o.0))
    }
}

impl SecretKey {
    /// Encrypts `m` with a random lane drawn from `rng` in the key's noise range.
    pub fn encrypt_with<R: Rng + ?Sized>(&self, m: f64, rng: &mut R) -> Result<Ciphertext> {
        if !m.is_finite() {
            return Err(Error::NonFinitePlaintext { index: 0, value: m });
        }
        Ok(self.encrypt_lanes(m, self.noise().sample(rng)))
    }

    /// Encrypts `m` with fresh randomness from the thread-local CSPRNG.
    pub fn encrypt(&self, m: f64) -> Result<Ciphertext> {
        self.encrypt_with(m, &mut rand::rng())
    }

    /// `S·diag(m, r)·S⁻¹` with an explicit random lane (for tests and the walkthrough).
    pub fn encrypt_lanes(&self, m: f64, r: f64) -> Ciphertext {
        let p = self.message_projector();
        let d = m - r;
        Ciphertext([[r + d * p[0][0], d * p[0][1]], [d * p[1][0], r + d * p[1][1]]])
    }

    /// `(S⁻¹·C·S)[0][0]`.
    pub fn decrypt(&self, c: &Ciphertext) -> f64 {
        let w = self.decryption_weights();
        let c = c.0;
        w[0][0] * c[0][0] + w[0][1] * c[0][1] + w[1][0] * c[1][0] + w[1][1] * c[1][1]
    }

    /// `(S⁻¹·C·S)[1][1]`: the random lane.
    pub fn decrypt_noise_lane(&self, c: &Ciphertext) -> f64 {
        let w = self.noise_lane_weights();
        let c = c.0;
        w[0][0] * c[0][0] + w[0][1] * c[0][1] + w[1][0] * c[1][0] + w[1][1] * c[1][1]
    }
}
