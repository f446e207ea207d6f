//! Matrix functions of a 2x2 ciphertext, through its two eigenvalues.
//!
//! A ciphertext `C = S·diag(m, r)·S⁻¹` has eigenvalues `{m, r}`, so for any function `f`
//! `f(C) = S·diag(f(m), f(r))·S⁻¹ = α·I + β·C` with `β = (f(m) − f(r))/(m − r)` and
//! `α = f(m) − β·m`. Computing `α, β` needs `m` and `r` — which the evaluator obtains from
//! `trace(C)` and `det(C)`. **Every function here except [`ElementFunction::Square`] therefore uses the
//! 2x2 structure and reads the plaintext on the way**: that is exactly the trace/determinant attack of the
//! security walkthrough (`web/walkthrough.html`, `docs/attacks.md`), and why these functions are cheap.
//!
//! Numerics: with `c = (m + r)/2` and `δ = |m − r|/2` (from `((c₀₀ − c₁₁)/2)² + c₀₁c₁₀`), `β` is a
//! divided difference that cancels when `δ → 0`; below `δ < 1e-4·max(1, |c|)` it is replaced by its
//! Taylor series `f′(c) + f‴(c)·δ²/6` (truncation `O(δ⁴)`, below `f64` rounding). A rounding error in `δ`
//! only perturbs the result at second order, so nearly equal lanes keep full accuracy.

use crate::error::{Error, Result};
use crate::function::ElementFunction;

// The logistic function is a scalar element function and lives with the others in `function`; it is also
// named here, where it has always been public (`more_core::spectral::sigmoid`).
pub use crate::function::sigmoid;

/// Relative tolerance on a negative discriminant that is still treated as rounding (`δ = 0`).
const DISCRIMINANT_TOLERANCE: f64 = 1e-4;
/// Below `δ < TAYLOR_SWITCH · max(1, |c|)` the divided difference is replaced by its Taylor series.
const TAYLOR_SWITCH: f64 = 1e-4;

/// The coefficients `(α, β)` with `f(C) = α·I + β·C` for the 2x2 matrix `[[c00, c01], [c10, c11]]`.
///
/// `index` only labels errors. Fails with [`Error::NotACiphertext`] when the eigenvalues are complex
/// beyond rounding.
#[inline]
pub fn coefficients(f: ElementFunction, c: [f64; 4], index: usize) -> Result<(f64, f64)> {
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
        ElementFunction::Abs => abs_coefficients(mid, delta),
        ElementFunction::Relu => {
            let (a, b) = abs_coefficients(mid, delta);
            (0.5 * a, 0.5 * (1.0 + b))
        }
        ElementFunction::Step => step_coefficients(mid, delta),
        ElementFunction::Square => {
            // (αI + βC) with β = m + r = 2c, α = −m·r = −(c² − δ²).
            (delta * delta - mid * mid, 2.0 * mid)
        }
        _ => {
            let (hi, lo) = (f.eval(mid + delta), f.eval(mid - delta));
            let beta = if delta > TAYLOR_SWITCH * mid.abs().max(1.0) {
                (hi - lo) / (2.0 * delta)
            } else {
                let (d1, d3) = f.derivatives_1_3(mid).expect("the non-smooth functions are handled above");
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

/// `step(C) = α·I + β·C` from the eigenvalues `c ± δ` (`step(x) = 1` for `x > 0`, else 0).
#[inline]
fn step_coefficients(mid: f64, delta: f64) -> (f64, f64) {
    let (hi, lo) = (mid + delta, mid - delta);
    if lo > 0.0 {
        (1.0, 0.0)
    } else if hi <= 0.0 {
        (0.0, 0.0)
    } else {
        // Opposite signs, so δ > 0: β = (1 − 0)/(hi − lo), α = 1 − β·hi.
        let beta = 0.5 / delta;
        (1.0 - beta * hi, beta)
    }
}
