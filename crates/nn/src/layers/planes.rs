//! Elementwise functions on encrypted batches: stacked ciphertext planes `[c00 | c01 | c10 | c11]`
//! (`data.len() = 4n`) and the coefficient form `[α | β]` (`data.len() = 2n`, [`crate::coefficient`]):
//! shared by the activation and max-pooling layers.

use more_core::ElementFunction;

use crate::error::{Error, Result};

/// Applies `f` in place to stacked planes. `Square` is the ring product `C·C` (ring-only); every other
/// function uses the 2x2 structure (the spectral formula, `more_core::spectral::coefficients`).
pub fn spectral_inplace(data: &mut [f32], f: ElementFunction) -> Result<()> {
    let n = data.len() / 4;
    let (p0, rest) = data.split_at_mut(n);
    let (p1, rest) = rest.split_at_mut(n);
    let (p2, p3) = rest.split_at_mut(n);
    for i in 0..n {
        let (a, b, c, d) = (p0[i], p1[i], p2[i], p3[i]);
        if f == ElementFunction::Square {
            p0[i] = a * a + b * c;
            p1[i] = a * b + b * d;
            p2[i] = c * a + d * c;
            p3[i] = c * b + d * d;
            continue;
        }
        let cf = [f64::from(a), f64::from(b), f64::from(c), f64::from(d)];
        let (alpha, beta) = more_core::spectral::coefficients(f, cf, i)?;
        p0[i] = (alpha + beta * cf[0]) as f32;
        p1[i] = (beta * cf[1]) as f32;
        p2[i] = (beta * cf[2]) as f32;
        p3[i] = (alpha + beta * cf[3]) as f32;
    }
    Ok(())
}

/// ReLU on stacked planes by the spectral formula (uses the 2x2 structure), specialised and branch-free so
/// it vectorises: with eigenvalues `c ± δ`, `relu(C) = C` if both are ≥ 0, `0` if both are ≤ 0, else
/// `α·I + β·C` with `α = (c + δ)(δ − c)/(2δ)`, `β = (1 + c/δ)/2` — the coefficients of
/// `more_core::spectral::coefficients(Relu, ..)`, here in `f32` (the planes' precision; the eval command
/// measures the end-to-end logit error).
pub fn relu_planes(data: &mut [f32]) -> Result<()> {
    let n = data.len() / 4;
    let (p0, rest) = data.split_at_mut(n);
    let (p1, rest) = rest.split_at_mut(n);
    let (p2, p3) = rest.split_at_mut(n);
    let mut bad = 0u32;
    for (((x0, x1), x2), x3) in p0.iter_mut().zip(p1.iter_mut()).zip(p2.iter_mut()).zip(p3.iter_mut()) {
        let (a, b, c, d) = (*x0, *x1, *x2, *x3);
        let mid = 0.5 * (a + d);
        let half = 0.5 * (a - d);
        let disc = half * half + b * c;
        let scale = a.abs() + b.abs() + c.abs() + d.abs();
        bad |= u32::from(disc < -1e-4 * scale * scale);
        let delta = disc.max(0.0).sqrt();
        let (hi, lo) = (mid + delta, mid - delta);
        let inv = 1.0 / delta.max(f32::MIN_POSITIVE);
        let mixed = lo < 0.0 && hi > 0.0;
        let alpha = if mixed { 0.5 * hi * -lo * inv } else { 0.0 };
        let beta = if mixed {
            0.5 + 0.5 * mid * inv
        } else if lo >= 0.0 {
            1.0
        } else {
            0.0
        };
        *x0 = alpha + beta * a;
        *x1 = beta * b;
        *x2 = beta * c;
        *x3 = alpha + beta * d;
    }
    if bad != 0 {
        return Err(Error::NotACiphertext("relu"));
    }
    Ok(())
}

/// Applies `f` in place to the coefficient form `[α | β]` (`C = α·I + β·J`, `J² = I`) through the
/// eigenvalues `α ± β` — **uses the 2x2 structure** (the eigenvalues are `{m, r}`):
/// `α' = (f(α + β) + f(α − β))/2`, `β' = (f(α + β) − f(α − β))/2`. No division, so it stays exact to
/// rounding when `β → 0` (nearly equal lanes). `Square` is the algebra's product
/// `(α + βJ)² = (α² + β²) + 2αβ·J` — ring arithmetic on the coefficients (the conversion to them is not).
pub fn coefficient_map_inplace(data: &mut [f32], f: ElementFunction) {
    let (alpha, beta) = data.split_at_mut(data.len() / 2);
    let pairs = alpha.iter_mut().zip(beta.iter_mut());
    match f {
        ElementFunction::Square => pairs.for_each(|(a, b)| {
            let (x, y) = (*a, *b);
            *a = x * x + y * y;
            *b = 2.0 * x * y;
        }),
        ElementFunction::Relu => pairs.for_each(|(a, b)| {
            let (hi, lo) = ((*a + *b).max(0.0), (*a - *b).max(0.0));
            *a = 0.5 * (hi + lo);
            *b = 0.5 * (hi - lo);
        }),
        _ => pairs.for_each(|(a, b)| {
            let (hi, lo) = (f.eval_f32(*a + *b), f.eval_f32(*a - *b));
            *a = 0.5 * (hi + lo);
            *b = 0.5 * (hi - lo);
        }),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// `f` through the eigenvalues of the coefficient form equals the spectral formula on the four planes
    /// of the same matrices, including nearly equal and equal lanes (`β` down to 0).
    #[test]
    fn coefficient_map_matches_the_spectral_formula() {
        // J = [[j00, j01], [j10, −j00]] with J² = I (j00² + j01·j10 = 1).
        let (j00, j01) = (0.6f32, 2.0f32);
        let j10 = (1.0 - j00 * j00) / j01;
        let pairs: Vec<(f32, f32)> =
            vec![(0.3, 0.9), (-0.7, 0.2), (1.5, -0.4), (0.1, 1e-3), (-0.2, 1e-7), (0.4, 0.0), (-2.0, -1.5), (0.0, 0.0)];
        for f in [
            ElementFunction::Square,
            ElementFunction::Relu,
            ElementFunction::Abs,
            ElementFunction::Sigmoid,
            ElementFunction::Tanh,
            ElementFunction::Exp,
        ] {
            let n = pairs.len();
            let mut coef: Vec<f32> = pairs.iter().map(|p| p.0).chain(pairs.iter().map(|p| p.1)).collect();
            let mut planes = vec![0.0f32; 4 * n];
            for (i, &(a, b)) in pairs.iter().enumerate() {
                planes[i] = a + b * j00;
                planes[n + i] = b * j01;
                planes[2 * n + i] = b * j10;
                planes[3 * n + i] = a - b * j00;
            }
            coefficient_map_inplace(&mut coef, f);
            spectral_inplace(&mut planes, f).unwrap();
            for i in 0..n {
                let (a, b) = (coef[i], coef[n + i]);
                let want = [planes[i], planes[n + i], planes[2 * n + i], planes[3 * n + i]];
                let got = [a + b * j00, b * j01, b * j10, a - b * j00];
                for (g, w) in got.iter().zip(want) {
                    assert!((g - w).abs() <= 2e-6 * (1.0 + w.abs()), "{f} at {:?}: {got:?} vs {want:?}", pairs[i]);
                }
            }
        }
    }
}
