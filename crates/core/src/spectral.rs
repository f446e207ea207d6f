//! Matrix functions of a 2x2 ciphertext, through its two eigenvalues.
//!
//! A ciphertext `C = S·diag(m, r)·S⁻¹` has eigenvalues `{m, r}`, so for any function `f`
//! `f(C) = S·diag(f(m), f(r))·S⁻¹ = α·I + β·C` with `β = (f(m) − f(r))/(m − r)` and
//! `α = f(m) − β·m`. Computing `α, β` needs `m` and `r` — which the evaluator obtains from
//! `trace(C)` and `det(C)`. **Every function here except [`MatrixFunction::Square`] therefore uses the
//! 2x2 structure and reads the plaintext on the way**: that is exactly attack 1 of the security
//! walkthrough, and why these functions are cheap.
//!
//! Numerics: with `c = (m + r)/2` and `δ = |m − r|/2` (from `((c₀₀ − c₁₁)/2)² + c₀₁c₁₀`), `β` is a
//! divided difference that cancels when `δ → 0`; below `δ < 1e-4·max(1, |c|)` it is replaced by its
//! Taylor series `f′(c) + f‴(c)·δ²/6` (truncation `O(δ⁴)`, below `f64` rounding). A rounding error in `δ`
//! only perturbs the result at second order, so nearly equal lanes keep full accuracy.

use crate::error::{Error, Result};

/// An elementwise function evaluated on ciphertexts.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum MatrixFunction {
    /// `x²` — computed as `C·C`: **ring-only** (valid in any homomorphic scheme).
    Square,
    /// `eˣ` — uses the 2x2 structure.
    Exp,
    /// `1/(1 + e⁻ˣ)` — uses the 2x2 structure.
    Sigmoid,
    /// `tanh x` — uses the 2x2 structure.
    Tanh,
    /// `|x|` — non-analytic: uses the 2x2 structure (the eigen-decomposition).
    Abs,
    /// `max(x, 0) = (x + |x|)/2` — uses the 2x2 structure.
    Relu,
}

impl MatrixFunction {
    /// Whether it is computed with ring operations only (`+`, `·`) and so would also run in a scheme
    /// that hides the plaintext.
    pub fn is_ring_only(self) -> bool {
        matches!(self, Self::Square)
    }

    /// A short name (`"relu"`, `"exp"`, ...).
    pub fn name(self) -> &'static str {
        match self {
            Self::Square => "square",
            Self::Exp => "exp",
            Self::Sigmoid => "sigmoid",
            Self::Tanh => "tanh",
            Self::Abs => "abs",
            Self::Relu => "relu",
        }
    }

    /// The function on a plain real number.
    pub fn eval(self, x: f64) -> f64 {
        match self {
            Self::Square => x * x,
            Self::Exp => x.exp(),
            Self::Sigmoid => sigmoid(x),
            Self::Tanh => x.tanh(),
            Self::Abs => x.abs(),
            Self::Relu => x.max(0.0),
        }
    }

    /// `(f′(x), f‴(x))` for the smooth functions.
    fn derivatives_1_3(self, x: f64) -> (f64, f64) {
        match self {
            Self::Square => (2.0 * x, 0.0),
            Self::Exp => {
                let e = x.exp();
                (e, e)
            }
            Self::Sigmoid => {
                let s = sigmoid(x);
                let d1 = s * (1.0 - s);
                (d1, d1 * (1.0 - 6.0 * s + 6.0 * s * s))
            }
            Self::Tanh => {
                let t = x.tanh();
                let d1 = 1.0 - t * t;
                (d1, -2.0 * d1 * (1.0 - 3.0 * t * t))
            }
            Self::Abs | Self::Relu => unreachable!("non-smooth functions use the sign formula"),
        }
    }
}

/// The logistic function, evaluated without overflow.
pub fn sigmoid(x: f64) -> f64 {
    if x >= 0.0 {
        1.0 / (1.0 + (-x).exp())
    } else {
        let e = x.exp();
        e / (1.0 + e)
    }
}

/// Relative tolerance on a negative discriminant that is still treated as rounding (`δ = 0`).
const DISCRIMINANT_TOLERANCE: f64 = 1e-4;
/// Below `δ < TAYLOR_SWITCH · max(1, |c|)` the divided difference is replaced by its Taylor series.
const TAYLOR_SWITCH: f64 = 1e-4;

/// The coefficients `(α, β)` with `f(C) = α·I + β·C` for the 2x2 matrix `[[c00, c01], [c10, c11]]`.
///
/// `index` only labels errors. Fails with [`Error::NotACiphertext`] when the eigenvalues are complex
/// beyond rounding.
#[inline]
pub fn coefficients(f: MatrixFunction, c: [f64; 4], index: usize) -> Result<(f64, f64)> {
    let [c00, c01, c10, c11] = c;
    let mid = 0.5 * (c00 + c11);
    let half_diff = 0.5 * (c00 - c11);
    let cross = c01 * c10;
    let mut disc = half_diff * half_diff + cross;
    if disc < 0.0 {
        let scale = c00.abs() + c01.abs() + c10.abs() + c11.abs();
        if disc < -DISCRIMINANT_TOLERANCE * scale * scale || disc.is_nan() {
            return Err(Error::NotACiphertext { index, discriminant: disc });
        }
        disc = 0.0;
    }
    let delta = disc.sqrt();
    Ok(match f {
        MatrixFunction::Abs => abs_coefficients(mid, delta),
        MatrixFunction::Relu => {
            let (a, b) = abs_coefficients(mid, delta);
            (0.5 * a, 0.5 * (1.0 + b))
        }
        MatrixFunction::Square => {
            // (αI + βC) with β = m + r = 2c, α = −m·r = −(c² − δ²).
            (delta * delta - mid * mid, 2.0 * mid)
        }
        _ => {
            let (hi, lo) = (f.eval(mid + delta), f.eval(mid - delta));
            let beta = if delta > TAYLOR_SWITCH * mid.abs().max(1.0) {
                (hi - lo) / (2.0 * delta)
            } else {
                let (d1, d3) = f.derivatives_1_3(mid);
                d1 + d3 * delta * delta / 6.0
            };
            (0.5 * (hi + lo) - beta * mid, beta)
        }
    })
}

/// `|C| = α·I + β·C` from the eigenvalues `c ± δ`.
#[inline]
fn abs_coefficients(mid: f64, delta: f64) -> (f64, f64) {
    let (hi, lo) = (mid + delta, mid - delta);
    if lo >= 0.0 {
        (0.0, 1.0)
    } else if hi <= 0.0 {
        (0.0, -1.0)
    } else {
        // Opposite signs, so δ > |c| > ... and δ > 0: β = c/δ, α = −λ₁λ₂/δ = (δ² − c²)/δ.
        (hi * -lo / delta, mid / delta)
    }
}
