//! Encrypted tensors in coefficient form: element `i` is the ciphertext `α[i]·I + β[i]·X̂`.
//!
//! Two real arrays instead of four planes. Which steps are **ring-only** (they would run under any
//! homomorphic scheme: sums, public scalings, products in the commutative algebra `ℝ[X̂]/(X̂² − q)`) and
//! which **use the 2x2 structure** (they read the eigenvalues `α ± √q·β`, i.e. `{m, r}`) is said on every
//! method.
//!
//! Cost: a linear map with public coefficients (reshape, transpose, im2col, a public-weight GEMM) acts on
//! `α` and `β` independently — 2x the plaintext work. A product of two encrypted tensors,
//! `(α + βX̂)(α' + β'X̂) = (αα' + q·ββ') + (αβ' + βα')X̂`, costs 3 real products with Karatsuba
//! (`αα'`, `ββ'`, `(α + β)(α' + β')`) instead of the 8 plane products of the 4-plane form.

use ndarray::linalg::general_mat_mul;
use ndarray::{Array2, ArrayD, ArrayView2, Axis, IxDyn, Zip};

use more_core::{EncryptedTensor, Real};

use crate::basis::Basis;
use crate::error::{Error, Result};

/// Largest relative residual `‖C − αI − βX̂‖/‖C‖` accepted when converting ciphertexts: rounding of a
/// genuine ciphertext under the same key stays near `κ(S)²·ε`; another key gives residuals of order 1.
pub const SPAN_TOLERANCE: f64 = 1e-3;

/// An encrypted tensor in coefficient form over a public [`Basis`].
#[derive(Debug, Clone, PartialEq)]
pub struct CoeffTensor<F: Real> {
    alpha: ArrayD<F>,
    beta: ArrayD<F>,
    basis: Basis,
}

impl<F: Real> CoeffTensor<F> {
    /// From coefficient arrays of one shape.
    pub fn from_parts(alpha: ArrayD<F>, beta: ArrayD<F>, basis: Basis) -> Result<Self> {
        if alpha.shape() != beta.shape() {
            return Err(Error::ShapeMismatch {
                op: "from_parts",
                left: alpha.shape().to_vec(),
                right: beta.shape().to_vec(),
            });
        }
        Ok(Self { alpha, beta, basis })
    }

    /// The trivial, **non-hiding** encryption `x·I` of public values (plaintext initial weights, public
    /// constants) — ring-only.
    pub fn public(values: ArrayD<F>, basis: Basis) -> Self {
        let beta = ArrayD::zeros(values.raw_dim());
        Self { alpha: values, beta, basis }
    }

    /// Zeros of a shape.
    pub fn zeros(shape: &[usize], basis: Basis) -> Self {
        Self::public(ArrayD::zeros(IxDyn(shape)), basis)
    }

    /// Converts 4-plane ciphertexts into coefficient form (key-free), rejecting elements that are not in
    /// `span{I, X̂}` (ciphertexts under another key) with [`Error::NotInSpan`].
    pub fn from_encrypted(c: &EncryptedTensor<F>, basis: Basis) -> Result<Self> {
        let [p0, p1, p2, p3] = c.plane_slices();
        let n = c.len();
        let mut alpha = Vec::with_capacity(n);
        let mut beta = Vec::with_capacity(n);
        for i in 0..n {
            let m = [p0[i].as_f64(), p1[i].as_f64(), p2[i].as_f64(), p3[i].as_f64()];
            let (a, b, res) = basis.coefficients(m);
            if res.is_nan() || res > SPAN_TOLERANCE {
                return Err(Error::NotInSpan { index: i, residual: res });
            }
            alpha.push(F::from_f64(a));
            beta.push(F::from_f64(b));
        }
        let shape = IxDyn(c.shape());
        Ok(Self {
            alpha: ArrayD::from_shape_vec(shape.clone(), alpha).expect("shape"),
            beta: ArrayD::from_shape_vec(shape, beta).expect("shape"),
            basis,
        })
    }

    /// Back to the 4-plane form of `more-core` (for the wire, or for `EncryptedTensor` inference).
    pub fn to_encrypted(&self) -> Result<EncryptedTensor<F>> {
        let x = self.basis.xhat;
        let (a, b) = (&self.alpha, &self.beta);
        let (x00, x01, x10) = (F::from_f64(x[0][0]), F::from_f64(x[0][1]), F::from_f64(x[1][0]));
        let c00 = Zip::from(a).and(b).map_collect(|&a, &b| a + b * x00);
        let c01 = b.mapv(|b| b * x01);
        let c10 = b.mapv(|b| b * x10);
        let c11 = Zip::from(a).and(b).map_collect(|&a, &b| a - b * x00);
        Ok(EncryptedTensor::from_planes([c00, c01, c10, c11])?)
    }

    /// `α` (the trace half).
    pub fn alpha(&self) -> &ArrayD<F> {
        &self.alpha
    }

    /// `β` (the coefficient of `X̂`).
    pub fn beta(&self) -> &ArrayD<F> {
        &self.beta
    }

    /// The reference basis.
    pub fn basis(&self) -> &Basis {
        &self.basis
    }

    /// The plaintext shape.
    pub fn shape(&self) -> &[usize] {
        self.alpha.shape()
    }

    /// Number of encrypted values.
    pub fn len(&self) -> usize {
        self.alpha.len()
    }

    /// True when there are no elements.
    pub fn is_empty(&self) -> bool {
        self.alpha.is_empty()
    }

    /// `(α, β)`.
    pub fn into_parts(self) -> (ArrayD<F>, ArrayD<F>, Basis) {
        (self.alpha, self.beta, self.basis)
    }

    fn check(&self, other: &Self, op: &'static str) -> Result<()> {
        if self.basis != other.basis && !self.basis.same_as(&other.basis) {
            return Err(Error::BasisMismatch { op });
        }
        if self.shape() != other.shape() {
            return Err(Error::ShapeMismatch { op, left: self.shape().to_vec(), right: other.shape().to_vec() });
        }
        Ok(())
    }

    /// True when every coefficient is finite.
    pub fn is_finite(&self) -> bool {
        self.alpha.iter().chain(self.beta.iter()).all(|x| x.is_finite())
    }

    /// `C₁ + C₂` — ring-only.
    pub fn add(&self, other: &Self) -> Result<Self> {
        self.check(other, "add")?;
        Ok(Self { alpha: &self.alpha + &other.alpha, beta: &self.beta + &other.beta, basis: self.basis })
    }

    /// `C₁ − C₂` — ring-only.
    pub fn sub(&self, other: &Self) -> Result<Self> {
        self.check(other, "sub")?;
        Ok(Self { alpha: &self.alpha - &other.alpha, beta: &self.beta - &other.beta, basis: self.basis })
    }

    /// `self += a·other` in place — ring-only.
    pub fn scaled_add(&mut self, a: F, other: &Self) -> Result<()> {
        self.check(other, "scaled_add")?;
        self.alpha.scaled_add(a, &other.alpha);
        self.beta.scaled_add(a, &other.beta);
        Ok(())
    }

    /// `−C` — ring-only.
    pub fn neg(&self) -> Self {
        self.scale(-F::one())
    }

    /// `a·C` for a public scalar — ring-only.
    pub fn scale(&self, a: F) -> Self {
        Self { alpha: &self.alpha * a, beta: &self.beta * a, basis: self.basis }
    }

    /// `C + a·I` for a public scalar — ring-only.
    pub fn shift(&self, a: F) -> Self {
        Self { alpha: &self.alpha + a, beta: self.beta.clone(), basis: self.basis }
    }

    /// Elementwise product `C₁·C₂` — ring-only.
    pub fn mul(&self, other: &Self) -> Result<Self> {
        self.check(other, "mul")?;
        let q = F::from_f64(self.basis.q);
        let alpha = Zip::from(&self.alpha)
            .and(&self.beta)
            .and(&other.alpha)
            .and(&other.beta)
            .map_collect(|&a, &b, &c, &d| a * c + q * b * d);
        let beta = Zip::from(&self.alpha)
            .and(&self.beta)
            .and(&other.alpha)
            .and(&other.beta)
            .map_collect(|&a, &b, &c, &d| a * d + b * c);
        Ok(Self { alpha, beta, basis: self.basis })
    }

    /// The same public linear map applied to `α` and `β` (reshape, transpose, sums, im2col, pooling by
    /// averaging, a GEMM with public weights, ...) — ring-only: the map has public coefficients.
    pub fn map_linear(&self, f: impl Fn(&ArrayD<F>) -> ArrayD<F>) -> Self {
        Self { alpha: f(&self.alpha), beta: f(&self.beta), basis: self.basis }
    }

    /// Like [`CoeffTensor::map_linear`] for fallible maps.
    pub fn try_map_linear<E>(
        &self,
        f: impl Fn(&ArrayD<F>) -> std::result::Result<ArrayD<F>, E>,
    ) -> std::result::Result<Self, E> {
        Ok(Self { alpha: f(&self.alpha)?, beta: f(&self.beta)?, basis: self.basis })
    }

    /// Matrix product of two encrypted 2-D tensors `[n, k]·[k, m]` — ring-only, 3 real GEMMs
    /// (Karatsuba).
    pub fn matmul(&self, other: &Self) -> Result<Self> {
        let (a, b) = (as2(&self.alpha, "matmul")?, as2(&self.beta, "matmul")?);
        let (c, d) = (as2(&other.alpha, "matmul")?, as2(&other.beta, "matmul")?);
        if self.basis != other.basis && !self.basis.same_as(&other.basis) {
            return Err(Error::BasisMismatch { op: "matmul" });
        }
        if a.ncols() != c.nrows() {
            return Err(Error::ShapeMismatch {
                op: "matmul",
                left: self.shape().to_vec(),
                right: other.shape().to_vec(),
            });
        }
        let (alpha, beta) = karatsuba(a, b, c, d, F::from_f64(self.basis.q));
        Ok(Self { alpha: alpha.into_dyn(), beta: beta.into_dyn(), basis: self.basis })
    }

    /// `self · w` for a public 2-D `w` — ring-only, 2 real GEMMs.
    pub fn matmul_public(&self, w: ArrayView2<'_, F>) -> Result<Self> {
        let (a, b) = (as2(&self.alpha, "matmul_public")?, as2(&self.beta, "matmul_public")?);
        if a.ncols() != w.nrows() {
            return Err(Error::ShapeMismatch {
                op: "matmul_public",
                left: self.shape().to_vec(),
                right: w.shape().to_vec(),
            });
        }
        Ok(Self { alpha: a.dot(&w).into_dyn(), beta: b.dot(&w).into_dyn(), basis: self.basis })
    }

    /// The two eigenvalue lanes `(α + √q·β, α − √q·β)` — **uses the 2x2 structure**: these are `{m, r}`
    /// (in an order only the key owner knows).
    pub fn to_lanes(&self) -> (ArrayD<F>, ArrayD<F>) {
        let s = F::from_f64(self.basis.sqrt_q());
        let plus = Zip::from(&self.alpha).and(&self.beta).map_collect(|&a, &b| a + s * b);
        let minus = Zip::from(&self.alpha).and(&self.beta).map_collect(|&a, &b| a - s * b);
        (plus, minus)
    }

    /// Back from eigenvalue lanes — uses the 2x2 structure (`√q`).
    pub fn from_lanes(plus: ArrayD<F>, minus: ArrayD<F>, basis: Basis) -> Result<Self> {
        if plus.shape() != minus.shape() {
            return Err(Error::ShapeMismatch {
                op: "from_lanes",
                left: plus.shape().to_vec(),
                right: minus.shape().to_vec(),
            });
        }
        let half = F::from_f64(0.5);
        let inv = F::from_f64(0.5 / basis.sqrt_q());
        let alpha = Zip::from(&plus).and(&minus).map_collect(|&p, &m| (p + m) * half);
        let beta = Zip::from(&plus).and(&minus).map_collect(|&p, &m| (p - m) * inv);
        Ok(Self { alpha, beta, basis })
    }

    /// Elementwise `f(C)` for any real function (ReLU, its step derivative, exp, log, sqrt, reciprocal,
    /// ...): `f` applied to both eigenvalues — **uses the 2x2 structure**. Decrypts to `f(m)`.
    pub fn map_lanes(&self, f: impl Fn(F) -> F) -> Self {
        let s = F::from_f64(self.basis.sqrt_q());
        let half = F::from_f64(0.5);
        let inv = F::from_f64(0.5 / self.basis.sqrt_q());
        let mut alpha = self.alpha.clone();
        let mut beta = self.beta.clone();
        Zip::from(&mut alpha).and(&mut beta).for_each(|a, b| {
            let (p, m) = (f(*a + s * *b), f(*a - s * *b));
            *a = (p + m) * half;
            *b = (p - m) * inv;
        });
        Self { alpha, beta, basis: self.basis }
    }

    /// Elementwise `f(C₁, C₂)` lane by lane (e.g. `step(z)·g` for a ReLU backward pass) — **uses the 2x2
    /// structure**.
    pub fn zip_lanes(&self, other: &Self, f: impl Fn(F, F) -> F) -> Result<Self> {
        self.check(other, "zip_lanes")?;
        let s = F::from_f64(self.basis.sqrt_q());
        let half = F::from_f64(0.5);
        let inv = F::from_f64(0.5 / self.basis.sqrt_q());
        let mut alpha = self.alpha.clone();
        let mut beta = self.beta.clone();
        Zip::from(&mut alpha).and(&mut beta).and(&other.alpha).and(&other.beta).for_each(|a, b, &c, &d| {
            let p = f(*a + s * *b, c + s * d);
            let m = f(*a - s * *b, c - s * d);
            *a = (p + m) * half;
            *b = (p - m) * inv;
        });
        Ok(Self { alpha, beta, basis: self.basis })
    }

    /// A whole-array function applied to each eigenvalue lane (softmax over an axis, max pooling, ...)
    /// — **uses the 2x2 structure**. Valid because all ciphertexts under one key share one eigenbasis.
    pub fn map_lane_arrays(&self, f: impl Fn(&ArrayD<F>) -> ArrayD<F>) -> Result<Self> {
        let (p, m) = self.to_lanes();
        Self::from_lanes(f(&p), f(&m), self.basis)
    }

    /// Sum over one axis — ring-only.
    pub fn sum_axis(&self, axis: usize) -> Self {
        self.map_linear(|x| x.sum_axis(Axis(axis)))
    }

    /// A view of the coefficients with another shape of equal size — ring-only.
    pub fn reshape(&self, shape: &[usize]) -> Result<Self> {
        let n: usize = shape.iter().product();
        if n != self.len() {
            return Err(Error::ShapeMismatch { op: "reshape", left: self.shape().to_vec(), right: shape.to_vec() });
        }
        Ok(self.map_linear(|x| {
            x.as_standard_layout().into_owned().into_shape_with_order(IxDyn(shape)).expect("size checked")
        }))
    }

    /// Rows `start..end` of the first axis (a mini-batch) — ring-only.
    pub fn rows(&self, idx: &[usize]) -> Self {
        self.map_linear(|x| x.select(Axis(0), idx))
    }

    /// The transpose of a 2-D tensor — ring-only (a public permutation).
    pub fn t(&self) -> Result<Self> {
        let (a, b) = (as2(&self.alpha, "transpose")?, as2(&self.beta, "transpose")?);
        Ok(Self {
            alpha: a.t().as_standard_layout().into_owned().into_dyn(),
            beta: b.t().as_standard_layout().into_owned().into_dyn(),
            basis: self.basis,
        })
    }

    /// `self + row` with `row` (shape = the trailing axes of `self`) broadcast over the leading axes
    /// (a bias) — ring-only.
    pub fn add_broadcast(&self, row: &Self) -> Result<Self> {
        if self.basis != row.basis && !self.basis.same_as(&row.basis) {
            return Err(Error::BasisMismatch { op: "add_broadcast" });
        }
        let bad =
            || Error::ShapeMismatch { op: "add_broadcast", left: self.shape().to_vec(), right: row.shape().to_vec() };
        let ra = row.alpha.broadcast(self.alpha.raw_dim()).ok_or_else(bad)?;
        let rb = row.beta.broadcast(self.beta.raw_dim()).ok_or_else(bad)?;
        Ok(Self { alpha: &self.alpha + &ra, beta: &self.beta + &rb, basis: self.basis })
    }

    /// Sum of all elements, as a one-element tensor — ring-only.
    pub fn sum_all(&self) -> Self {
        self.map_linear(|x| ArrayD::from_elem(IxDyn(&[1]), x.sum()))
    }

    /// Converts the coefficients to another precision.
    pub fn cast<G: Real>(&self) -> CoeffTensor<G> {
        CoeffTensor {
            alpha: self.alpha.mapv(|x| G::from_f64(x.as_f64())),
            beta: self.beta.mapv(|x| G::from_f64(x.as_f64())),
            basis: self.basis,
        }
    }
}

fn as2<'a, F: Real>(x: &'a ArrayD<F>, op: &'static str) -> Result<ArrayView2<'a, F>> {
    x.view().into_dimensionality().map_err(|_| Error::ShapeMismatch { op, left: x.shape().to_vec(), right: vec![] })
}

/// Inner dimension below which [`karatsuba`] uses four accumulating GEMMs instead of three: for short inner
/// dimensions a GEMM is memory-bound and Karatsuba's extra temporaries cost more than the saved product.
pub const KARATSUBA_MIN_INNER: usize = 64;

/// `(a + bX̂)(c + dX̂)` for matrices: `(ac + q·bd, (a + b)(c + d) − ac − bd)` — 3 GEMMs (Karatsuba), or
/// 4 accumulating GEMMs when the inner dimension is short. Ring-only either way.
pub fn karatsuba<F: Real>(
    a: ArrayView2<'_, F>,
    b: ArrayView2<'_, F>,
    c: ArrayView2<'_, F>,
    d: ArrayView2<'_, F>,
    q: F,
) -> (Array2<F>, Array2<F>) {
    let (n, m) = (a.nrows(), c.ncols());
    let mut alpha = Array2::<F>::zeros((n, m));
    let mut beta = Array2::<F>::zeros((n, m));
    if a.ncols() < KARATSUBA_MIN_INNER {
        general_mat_mul(F::one(), &a, &c, F::zero(), &mut alpha);
        general_mat_mul(q, &b, &d, F::one(), &mut alpha);
        general_mat_mul(F::one(), &a, &d, F::zero(), &mut beta);
        general_mat_mul(F::one(), &b, &c, F::one(), &mut beta);
        return (alpha, beta);
    }
    general_mat_mul(F::one(), &a, &c, F::zero(), &mut alpha);
    general_mat_mul(F::one(), &(&a + &b), &(&c + &d), F::zero(), &mut beta);
    let p2 = b.dot(&d);
    Zip::from(&mut alpha).and(&mut beta).and(&p2).for_each(|al, be, &p| {
        *be = *be - *al - p;
        *al += q * p;
    });
    (alpha, beta)
}
