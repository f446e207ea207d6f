//! Small helpers for real 2x2 matrices, row-major: `m[row][col]`.

/// A real 2x2 matrix, row-major.
pub type Mat2 = [[f64; 2]; 2];

/// The identity matrix.
pub const IDENTITY: Mat2 = [[1.0, 0.0], [0.0, 1.0]];

/// Matrix product `a · b`.
#[inline]
pub fn mul(a: &Mat2, b: &Mat2) -> Mat2 {
    [
        [a[0][0] * b[0][0] + a[0][1] * b[1][0], a[0][0] * b[0][1] + a[0][1] * b[1][1]],
        [a[1][0] * b[0][0] + a[1][1] * b[1][0], a[1][0] * b[0][1] + a[1][1] * b[1][1]],
    ]
}

/// Determinant.
#[inline]
pub fn det(a: &Mat2) -> f64 {
    a[0][0] * a[1][1] - a[0][1] * a[1][0]
}

/// Trace.
#[inline]
pub fn trace(a: &Mat2) -> f64 {
    a[0][0] + a[1][1]
}

/// Inverse, or `None` when the determinant is zero or the result is not finite.
pub fn inverse(a: &Mat2) -> Option<Mat2> {
    let d = det(a);
    if d == 0.0 || !d.is_finite() {
        return None;
    }
    let inv = [[a[1][1] / d, -a[0][1] / d], [-a[1][0] / d, a[0][0] / d]];
    inv.iter().flatten().all(|x| x.is_finite()).then_some(inv)
}

/// The 2-norm condition number `σ_max / σ_min` (infinite for a singular matrix).
///
/// Uses the closed-form 2x2 SVD (`σ = Q ± R` with `Q = ‖((a+d)/2, (c−b)/2)‖`, `R = ‖((a−d)/2, (c+b)/2)‖`),
/// which stays accurate near `κ = 1`.
pub fn condition_number(m: &Mat2) -> f64 {
    let [[a, b], [c, d]] = *m;
    let q = (0.5 * (a + d)).hypot(0.5 * (c - b));
    let r = (0.5 * (a - d)).hypot(0.5 * (c + b));
    let smin = (q - r).abs();
    if smin == 0.0 { f64::INFINITY } else { (q + r) / smin }
}

/// Rotation by `theta` radians.
pub fn rotation(theta: f64) -> Mat2 {
    let (s, c) = theta.sin_cos();
    [[c, -s], [s, c]]
}

/// Whether every entry is finite.
pub fn is_finite(a: &Mat2) -> bool {
    a.iter().flatten().all(|x| x.is_finite())
}
