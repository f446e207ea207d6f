//! [`Encrypted`]: `more-nn`'s training [`Algebra`] on ciphertexts in coefficient form, and [`OwnerReveal`],
//! the key owner's [`Reveal`].
//!
//! Ring-only here: `add`, `sub`, `mul`, `scale`, `shift`, `matmul` (Karatsuba), `gather`/`scatter_add`
//! (public index maps: im2col, col2im, transposes, pooling windows), bias broadcasts and sums, `Square`.
//! Using the 2x2 structure (the eigenvalue lanes `α ± √q·β`, i.e. `{m, r}`): every other [`ElementFunction`]
//! function — ReLU and its step derivative, abs (max pooling), sigmoid, tanh, exp and ln (softmax and
//! the cross-entropy value), sqrt (with a precision floor, see [`SQRT_FLOOR`]) and the reciprocal (Adam)
//! — and the row softmax, which is evaluated
//! lane by lane with the usual max subtraction (so it cannot overflow on either lane).

use ndarray::{ArrayD, ArrayView2, Axis, Ix2, Ix4};

use more_core::ElementFunction;
use more_nn::algebra::{Algebra, Reveal};
use more_nn::kernels::{self, Window};

use crate::basis::Basis;
use crate::coeff::{CoeffTensor, karatsuba};
use crate::owner::KeyOwner;

type NnResult<T> = more_nn::Result<T>;

/// The encrypted tensor algebra: every tensor is a [`CoeffTensor<f32>`] over one public [`Basis`].
/// It holds no key — a server can train with it.
#[derive(Debug, Clone, Copy)]
pub struct Encrypted {
    basis: Basis,
}

impl Encrypted {
    /// The algebra of ciphertexts expressed in `basis` (chosen key-free from the training data).
    pub fn new(basis: Basis) -> Self {
        Self { basis }
    }

    /// The basis.
    pub fn basis(&self) -> Basis {
        self.basis
    }
}

/// Converts this crate's errors for `more-nn`.
pub fn to_nn(e: crate::Error) -> more_nn::Error {
    match e {
        crate::Error::Core(c) => more_nn::Error::Core(c),
        crate::Error::ShapeMismatch { op, left, right } => {
            more_nn::Error::Shape { op, expected: format!("a shape fitting {left:?}"), found: right }
        }
        crate::Error::NonFinite { op } => more_nn::Error::NonFinite(op),
        other => more_nn::Error::Training(other.to_string()),
    }
}

fn shape_err(op: &'static str, expected: impl Into<String>, found: &[usize]) -> more_nn::Error {
    more_nn::Error::Shape { op, expected: expected.into(), found: found.to_vec() }
}

fn as2<'a>(op: &'static str, a: &'a ArrayD<f32>) -> NnResult<ArrayView2<'a, f32>> {
    a.view().into_dimensionality::<Ix2>().map_err(|_| shape_err(op, "a 2-D tensor", a.shape()))
}

fn op(x: ArrayView2<'_, f32>, transpose: bool) -> ArrayView2<'_, f32> {
    if transpose { x.reversed_axes() } else { x }
}

/// Relative precision floor of [`ElementFunction::Sqrt`]: a lane below `SQRT_FLOOR × max(|λ₊|, |λ₋|)` is
/// taken as that floor.
///
/// Why: a lane is stored as `α ± √q·β`, so its absolute rounding error is `~ε·κ(S)²·max(|λ₊|, |λ₋|)`.
/// Adam divides by `√v̂ + 10⁻⁸`; when one lane's gradients are tiny next to the other's (late in training
/// the real model's, or a shadow model that barely trains), that lane's `v̂` is pure rounding noise —
/// possibly zero or negative — and the division turns rounding noise into steps of many learning rates:
/// we measured MNIST runs collapse within 1 to 4 epochs. The floor (1e-5, above the `f32` rounding level
/// for `κ ≤ 10`) only changes lanes whose value is below what `f32` resolves next to the other lane;
/// their Adam step becomes `≤ 10⁻³·lr` instead of noise amplified by `1/ε`.
pub const SQRT_FLOOR: f32 = 1e-5;

fn sqrt_with_floor(a: &CoeffTensor<f32>) -> CoeffTensor<f32> {
    let (p, m) = a.to_lanes();
    let mut p = p;
    let mut m = m;
    ndarray::Zip::from(&mut p).and(&mut m).for_each(|x, y| {
        let floor = SQRT_FLOOR * x.abs().max(y.abs());
        *x = x.max(floor).sqrt();
        *y = y.max(floor).sqrt();
    });
    CoeffTensor::from_lanes(p, m, *a.basis()).expect("same shapes")
}

fn softmax_lane(l: &ArrayD<f32>) -> ArrayD<f32> {
    let mut out = l.clone();
    more_nn::layers::softmax::softmax_rows_inplace(&mut out);
    out
}

impl Algebra for Encrypted {
    type Tensor = CoeffTensor<f32>;

    fn shape(&self, t: &CoeffTensor<f32>) -> Vec<usize> {
        t.shape().to_vec()
    }

    fn public(&self, values: ArrayD<f32>) -> NnResult<CoeffTensor<f32>> {
        Ok(CoeffTensor::public(values, self.basis))
    }

    fn reshape(&self, t: &CoeffTensor<f32>, shape: &[usize]) -> NnResult<CoeffTensor<f32>> {
        t.reshape(shape).map_err(to_nn)
    }

    fn select_rows(&self, t: &CoeffTensor<f32>, rows: &[usize]) -> NnResult<CoeffTensor<f32>> {
        if t.shape().is_empty() || rows.iter().any(|&r| r >= t.shape()[0]) {
            return Err(shape_err("select_rows", "row indices within axis 0", t.shape()));
        }
        Ok(t.rows(rows))
    }

    // Both are linear index moves: each coefficient array goes through the plaintext kernel on its own.
    fn gather(&self, t: &CoeffTensor<f32>, index: &[usize], shape: &[usize]) -> NnResult<CoeffTensor<f32>> {
        t.try_map_linear(|x| kernels::gather(x, index, shape))
    }

    fn scatter_add(&self, t: &CoeffTensor<f32>, index: &[usize], shape: &[usize]) -> NnResult<CoeffTensor<f32>> {
        t.try_map_linear(|x| kernels::scatter_add(x, index, shape))
    }

    fn add(&self, a: &CoeffTensor<f32>, b: &CoeffTensor<f32>) -> NnResult<CoeffTensor<f32>> {
        a.add(b).map_err(to_nn)
    }

    fn sub(&self, a: &CoeffTensor<f32>, b: &CoeffTensor<f32>) -> NnResult<CoeffTensor<f32>> {
        a.sub(b).map_err(to_nn)
    }

    fn mul(&self, a: &CoeffTensor<f32>, b: &CoeffTensor<f32>) -> NnResult<CoeffTensor<f32>> {
        a.mul(b).map_err(to_nn)
    }

    fn scale(&self, a: &CoeffTensor<f32>, s: f32) -> NnResult<CoeffTensor<f32>> {
        Ok(a.scale(s))
    }

    fn shift(&self, a: &CoeffTensor<f32>, s: f32) -> NnResult<CoeffTensor<f32>> {
        Ok(a.shift(s))
    }

    fn matmul(&self, a: &CoeffTensor<f32>, ta: bool, b: &CoeffTensor<f32>, tb: bool) -> NnResult<CoeffTensor<f32>> {
        let (aa, ab) = (op(as2("matmul", a.alpha())?, ta), op(as2("matmul", a.beta())?, ta));
        let (ba, bb) = (op(as2("matmul", b.alpha())?, tb), op(as2("matmul", b.beta())?, tb));
        if aa.ncols() != ba.nrows() {
            return Err(shape_err("matmul", format!("{} rows on the right", aa.ncols()), ba.shape()));
        }
        let (alpha, beta) = karatsuba(aa, ab, ba, bb, self.basis.q as f32);
        CoeffTensor::from_parts(alpha.into_dyn(), beta.into_dyn(), self.basis).map_err(to_nn)
    }

    fn map(&self, a: &CoeffTensor<f32>, f: ElementFunction) -> NnResult<CoeffTensor<f32>> {
        Ok(match f {
            ElementFunction::Square => a.mul(a).map_err(to_nn)?,
            ElementFunction::Sqrt => sqrt_with_floor(a),
            f => a.map_lanes(|x| f.eval_f32(x)),
        })
    }

    fn add_row(&self, a: &CoeffTensor<f32>, b: &CoeffTensor<f32>) -> NnResult<CoeffTensor<f32>> {
        let a2 = as2("add_row", a.alpha())?;
        if b.len() != a2.ncols() {
            return Err(shape_err("add_row", format!("[{}]", a2.ncols()), b.shape()));
        }
        let row = b.reshape(&[a2.ncols()]).map_err(to_nn)?;
        a.add_broadcast(&row).map_err(to_nn)
    }

    fn sum_rows(&self, a: &CoeffTensor<f32>) -> NnResult<CoeffTensor<f32>> {
        as2("sum_rows", a.alpha())?;
        Ok(a.sum_axis(0))
    }

    fn row_sums(&self, a: &CoeffTensor<f32>) -> NnResult<CoeffTensor<f32>> {
        as2("row_sums", a.alpha())?;
        Ok(a.map_linear(|x| x.sum_axis(Axis(1)).insert_axis(Axis(1))))
    }

    fn mul_col(&self, a: &CoeffTensor<f32>, c: &CoeffTensor<f32>) -> NnResult<CoeffTensor<f32>> {
        let a2 = as2("mul_col", a.alpha())?;
        if c.shape() != [a2.nrows(), 1] {
            return Err(shape_err("mul_col", format!("[{}, 1]", a2.nrows()), c.shape()));
        }
        let full = c.map_linear(|x| x.broadcast(a.alpha().raw_dim()).expect("checked").to_owned());
        a.mul(&full).map_err(to_nn)
    }

    fn sum_all(&self, a: &CoeffTensor<f32>) -> NnResult<CoeffTensor<f32>> {
        Ok(a.sum_all())
    }

    fn im2col(&self, x: &CoeffTensor<f32>, win: Window) -> NnResult<CoeffTensor<f32>> {
        let s = x.shape().to_vec();
        if s.len() != 4 || win.output_hw(s[2], s[3]).is_none() {
            return Err(shape_err("im2col", "[N, C, H, W] larger than the kernel", &s));
        }
        Ok(x.map_linear(|a| {
            let a4 = a.view().into_dimensionality::<Ix4>().expect("4-D checked");
            kernels::im2col(a4, win).into_dyn()
        }))
    }

    fn col2im(&self, cols: &CoeffTensor<f32>, shape: &[usize], win: Window) -> NnResult<CoeffTensor<f32>> {
        let &[n, c, h, w] = shape else {
            return Err(shape_err("col2im", "[N, C, H, W]", shape));
        };
        let (oh, ow) =
            win.output_hw(h, w).ok_or_else(|| shape_err("col2im", "an input larger than the kernel", shape))?;
        if cols.shape() != [n * oh * ow, c * win.kh * win.kw] {
            return Err(shape_err("col2im", format!("[{}, {}]", n * oh * ow, c * win.kh * win.kw), cols.shape()));
        }
        Ok(cols.map_linear(|a| {
            let a2 = a.view().into_dimensionality::<Ix2>().expect("2-D checked");
            kernels::col2im(a2, [n, c, h, w], win).into_dyn()
        }))
    }

    fn softmax_rows(&self, logits: &CoeffTensor<f32>) -> NnResult<CoeffTensor<f32>> {
        as2("softmax_rows", logits.alpha())?;
        logits.map_lane_arrays(softmax_lane).map_err(to_nn)
    }
}

/// The key owner's [`Reveal`]: decrypts what the trainer reports (losses, logits for metrics).
#[derive(Debug)]
pub struct OwnerReveal<'a> {
    owner: &'a KeyOwner,
}

impl<'a> OwnerReveal<'a> {
    /// Reveals with this owner's key.
    pub fn new(owner: &'a KeyOwner) -> Self {
        Self { owner }
    }
}

impl Reveal<Encrypted> for OwnerReveal<'_> {
    fn reveal(&self, t: &CoeffTensor<f32>) -> NnResult<ArrayD<f32>> {
        Ok(self.owner.decrypt(t))
    }
}
