//! Encrypted tensors: four planes `c00, c01, c10, c11`, each an ordinary array with the plaintext shape.

use ndarray::{ArrayD, ArrayViewD, ArrayViewMutD, Axis, IxDyn, Zip};
use rand::Rng;

use crate::cipher::Ciphertext;
use crate::error::{Error, Result};
use crate::function::ElementFunction;
use crate::key::SecretKey;
use crate::real::Real;
use crate::spectral;

/// Most dimensions a tensor may have.
pub const MAX_DIMS: usize = 8;

/// An encrypted tensor: element `i` is the ciphertext `[[c00[i], c01[i]], [c10[i], c11[i]]]`.
///
/// Stored as one array of shape `[4, ...shape]` (plane-major, standard layout), so the four planes can be
/// fed to a plaintext linear layer as a batch four times as large (`more-nn`'s layers): a layer with plaintext
/// weights is linear and acts on each plane independently.
#[derive(Debug, Clone, PartialEq)]
pub struct EncryptedTensor<F: Real> {
    data: ArrayD<F>,
}

/// Plane indices.
pub mod plane {
    /// Row 0, column 0.
    pub const C00: usize = 0;
    /// Row 0, column 1.
    pub const C01: usize = 1;
    /// Row 1, column 0.
    pub const C10: usize = 2;
    /// Row 1, column 1.
    pub const C11: usize = 3;
}

pub(crate) fn check_shape(shape: &[usize]) -> Result<usize> {
    if shape.is_empty() || shape.len() > MAX_DIMS {
        return Err(Error::InvalidShape { shape: shape.to_vec(), reason: "need 1 to 8 dimensions" });
    }
    if shape.contains(&0) {
        return Err(Error::InvalidShape { shape: shape.to_vec(), reason: "zero-sized dimension" });
    }
    shape
        .iter()
        .try_fold(1usize, |acc, &d| acc.checked_mul(d))
        .filter(|&n| n.checked_mul(4).is_some())
        .ok_or(Error::InvalidShape { shape: shape.to_vec(), reason: "element count overflows" })
}

impl<F: Real> EncryptedTensor<F> {
    /// Wraps an array of shape `[4, ...shape]` (any layout; it is made standard).
    pub fn from_data(data: ArrayD<F>) -> Result<Self> {
        if data.ndim() < 2 || data.shape()[0] != 4 {
            return Err(Error::InvalidShape { shape: data.shape().to_vec(), reason: "expected [4, ...shape]" });
        }
        check_shape(&data.shape()[1..])?;
        let data = if data.is_standard_layout() { data } else { data.as_standard_layout().into_owned() };
        Ok(Self { data })
    }

    /// Builds a tensor from its four planes `[c00, c01, c10, c11]`, which must have one shape.
    pub fn from_planes(planes: [ArrayD<F>; 4]) -> Result<Self> {
        let shape = planes[0].shape().to_vec();
        for p in &planes[1..] {
            if p.shape() != shape.as_slice() {
                return Err(Error::ShapeMismatch { op: "from_planes", left: shape, right: p.shape().to_vec() });
            }
        }
        let views: Vec<_> = planes.iter().map(|p| p.view().insert_axis(Axis(0))).collect();
        let data = ndarray::concatenate(Axis(0), &views)
            .map_err(|_| Error::InvalidShape { shape: shape.clone(), reason: "cannot stack planes" })?;
        Self::from_data(data)
    }

    /// The trivial, **non-hiding** encryption `a·I` of public values (e.g. plaintext weights).
    pub fn public(values: ArrayViewD<'_, F>) -> Result<Self> {
        check_shape(values.shape())?;
        let zeros = ArrayD::zeros(values.raw_dim());
        Self::from_planes([values.to_owned(), zeros.clone(), zeros, values.to_owned()])
    }

    /// The plaintext shape (without the plane axis).
    pub fn shape(&self) -> &[usize] {
        &self.data.shape()[1..]
    }

    /// Number of encrypted values.
    pub fn len(&self) -> usize {
        self.data.len() / 4
    }

    /// Always false: zero-sized tensors are rejected on construction.
    pub fn is_empty(&self) -> bool {
        self.data.is_empty()
    }

    /// The `[4, ...shape]` array.
    pub fn data(&self) -> &ArrayD<F> {
        &self.data
    }

    /// Mutable access to the `[4, ...shape]` array (its shape cannot change).
    pub fn data_mut(&mut self) -> ArrayViewMutD<'_, F> {
        self.data.view_mut()
    }

    /// Consumes the tensor into its `[4, ...shape]` array.
    pub fn into_data(self) -> ArrayD<F> {
        self.data
    }

    /// One plane (see [`plane`]).
    pub fn plane(&self, index: usize) -> ArrayViewD<'_, F> {
        self.data.index_axis(Axis(0), index)
    }

    /// The four planes as flat slices `[c00, c01, c10, c11]`.
    pub fn plane_slices(&self) -> [&[F]; 4] {
        let flat = self.data.as_slice().expect("standard layout");
        let n = self.len();
        [&flat[..n], &flat[n..2 * n], &flat[2 * n..3 * n], &flat[3 * n..]]
    }

    /// The same data viewed with another plaintext shape of equal size.
    pub fn reshape(self, shape: &[usize]) -> Result<Self> {
        let n = check_shape(shape)?;
        if n != self.len() {
            return Err(Error::ShapeMismatch { op: "reshape", left: self.shape().to_vec(), right: shape.to_vec() });
        }
        let mut full = vec![4];
        full.extend_from_slice(shape);
        let data = self.data.into_shape_with_order(IxDyn(&full)).expect("sizes checked");
        Ok(Self { data })
    }

    /// Element `index` (flat) as a [`Ciphertext`].
    pub fn get(&self, index: usize) -> Option<Ciphertext> {
        (index < self.len()).then(|| {
            let p = self.plane_slices();
            let g = |k: usize| p[k][index].as_f64();
            Ciphertext([[g(0), g(1)], [g(2), g(3)]])
        })
    }

    fn same_shape(&self, other: &Self, op: &'static str) -> Result<()> {
        if self.shape() != other.shape() {
            return Err(Error::ShapeMismatch { op, left: self.shape().to_vec(), right: other.shape().to_vec() });
        }
        Ok(())
    }

    fn finite(self, op: &'static str) -> Result<Self> {
        match self.data.iter().position(|x| !x.is_finite()) {
            Some(i) => Err(Error::NonFinite { op, index: i % self.len() }),
            None => Ok(self),
        }
    }

    /// Elementwise `C₁ + C₂` — ring-only.
    pub fn add(&self, other: &Self) -> Result<Self> {
        self.same_shape(other, "add")?;
        Self { data: &self.data + &other.data }.finite("add")
    }

    /// Elementwise `C₁ − C₂` — ring-only.
    pub fn sub(&self, other: &Self) -> Result<Self> {
        self.same_shape(other, "sub")?;
        Self { data: &self.data - &other.data }.finite("sub")
    }

    /// Elementwise `−C` — ring-only.
    pub fn neg(&self) -> Self {
        Self { data: self.data.mapv(|x| -x) }
    }

    /// `a·C` for a public scalar `a` — ring-only.
    pub fn scale(&self, a: F) -> Result<Self> {
        Self { data: &self.data * a }.finite("scale")
    }

    /// `C + a·I` for a public scalar `a` — ring-only.
    pub fn shift(&self, a: F) -> Result<Self> {
        let mut out = self.clone();
        for p in [plane::C00, plane::C11] {
            out.data.index_axis_mut(Axis(0), p).mapv_inplace(|x| x + a);
        }
        out.finite("shift")
    }

    /// Elementwise `x·C` for a public tensor `x` of the same shape — ring-only.
    pub fn mul_public(&self, x: &ArrayViewD<'_, F>) -> Result<Self> {
        if x.shape() != self.shape() {
            return Err(Error::ShapeMismatch {
                op: "mul_public",
                left: self.shape().to_vec(),
                right: x.shape().to_vec(),
            });
        }
        let mut out = self.clone();
        for mut p in out.data.outer_iter_mut() {
            p *= x;
        }
        out.finite("mul_public")
    }

    /// Elementwise `C + x·I` for a public tensor `x` of the same shape — ring-only.
    pub fn add_public(&self, x: &ArrayViewD<'_, F>) -> Result<Self> {
        if x.shape() != self.shape() {
            return Err(Error::ShapeMismatch {
                op: "add_public",
                left: self.shape().to_vec(),
                right: x.shape().to_vec(),
            });
        }
        let mut out = self.clone();
        for p in [plane::C00, plane::C11] {
            let mut v = out.data.index_axis_mut(Axis(0), p);
            v += x;
        }
        out.finite("add_public")
    }

    /// Elementwise ciphertext product `C₁·C₂` (2x2 matrix product per element) — ring-only.
    pub fn mul(&self, other: &Self) -> Result<Self> {
        self.same_shape(other, "mul")?;
        let mut out = self.clone();
        {
            let a = self.plane_slices();
            let b = other.plane_slices();
            let n = self.len();
            let flat = out.data.as_slice_mut().expect("standard layout");
            let (o0, rest) = flat.split_at_mut(n);
            let (o1, rest) = rest.split_at_mut(n);
            let (o2, o3) = rest.split_at_mut(n);
            for i in 0..n {
                let (a0, a1, a2, a3) = (a[0][i], a[1][i], a[2][i], a[3][i]);
                let (b0, b1, b2, b3) = (b[0][i], b[1][i], b[2][i], b[3][i]);
                o0[i] = a0 * b0 + a1 * b2;
                o1[i] = a0 * b1 + a1 * b3;
                o2[i] = a2 * b0 + a3 * b2;
                o3[i] = a2 * b1 + a3 * b3;
            }
        }
        out.finite("mul")
    }

    /// Elementwise `C⁻¹` — ring-only; fails when a determinant is zero up to rounding (a lane is 0).
    pub fn inverse(&self) -> Result<Self> {
        let mut out = self.clone();
        let (c00, c01, c10, c11) = planes4_mut(&mut out.data);
        let mut bad = None;
        let tol = crate::cipher::SINGULAR_RTOL * F::epsilon().as_f64();
        for (i, (((p, q), s), t)) in c00.iter_mut().zip(c01).zip(c10).zip(c11).enumerate() {
            let (a, b, c, d) = (p.as_f64(), q.as_f64(), s.as_f64(), t.as_f64());
            let det = a * d - b * c;
            let inv = 1.0 / det;
            let norm2 = a * a + b * b + c * c + d * d;
            if det.abs() <= tol * norm2 || !inv.is_finite() {
                bad.get_or_insert(Error::Singular { index: i, det });
                continue;
            }
            *p = F::from_f64(d * inv);
            *q = F::from_f64(-b * inv);
            *s = F::from_f64(-c * inv);
            *t = F::from_f64(a * inv);
        }
        match bad {
            Some(e) => Err(e),
            None => out.finite("inverse"),
        }
    }

    /// Elementwise matrix function `f(C)`, decrypting to `f(m)`. `Square` is ring-only (`C·C`); all the
    /// others use the 2x2 structure (see [`crate::spectral`]).
    pub fn apply(&self, f: ElementFunction) -> Result<Self> {
        if f == ElementFunction::Square {
            return self.mul(self);
        }
        let mut out = self.clone();
        let (c00, c01, c10, c11) = planes4_mut(&mut out.data);
        let mut err = None;
        Zip::indexed(c00).and(c01).and(c10).and(c11).for_each(|i, p, q, s, t| {
            let c = [p.as_f64(), q.as_f64(), s.as_f64(), t.as_f64()];
            match spectral::coefficients(f, c, i) {
                Ok((alpha, beta)) => {
                    *p = F::from_f64(alpha + beta * c[0]);
                    *q = F::from_f64(beta * c[1]);
                    *s = F::from_f64(beta * c[2]);
                    *t = F::from_f64(alpha + beta * c[3]);
                }
                Err(e) => {
                    err.get_or_insert(e);
                }
            }
        });
        match err {
            Some(e) => Err(e),
            None => out.finite(f.name()),
        }
    }

    /// Sum of all elements — ring-only.
    pub fn sum(&self) -> Ciphertext {
        let s: Vec<f64> = self.data.outer_iter().map(|p| p.iter().map(|x| x.as_f64()).sum()).collect();
        Ciphertext([[s[0], s[1]], [s[2], s[3]]])
    }

    /// Converts the planes to another precision.
    pub fn cast<G: Real>(&self) -> EncryptedTensor<G> {
        EncryptedTensor { data: self.data.mapv(|x| G::from_f64(x.as_f64())) }
    }
}

/// The four planes of a `[4, ...]` array as mutable flat slices.
fn planes4_mut<F: Real>(data: &mut ArrayD<F>) -> (&mut [F], &mut [F], &mut [F], &mut [F]) {
    let n = data.len() / 4;
    let flat = data.as_slice_mut().expect("standard layout");
    let (a, rest) = flat.split_at_mut(n);
    let (b, rest) = rest.split_at_mut(n);
    let (c, d) = rest.split_at_mut(n);
    (a, b, c, d)
}

impl SecretKey {
    /// Encrypts a tensor (any shape) with fresh random lanes from `rng`.
    pub fn encrypt_tensor_with<F: Real, R: Rng + ?Sized>(
        &self,
        x: &ArrayViewD<'_, F>,
        rng: &mut R,
    ) -> Result<EncryptedTensor<F>> {
        let n = check_shape(x.shape())?;
        let p = self.message_projector();
        let noise = self.noise();
        let mut data = ArrayD::<F>::zeros(IxDyn(&[&[4][..], x.shape()].concat()));
        let (c00, c01, c10, c11) = planes4_mut(&mut data);
        let src: Vec<F>;
        let values: &[F] = match x.as_slice() {
            Some(s) => s,
            None => {
                src = x.iter().copied().collect();
                &src
            }
        };
        debug_assert_eq!(values.len(), n);
        for (i, &v) in values.iter().enumerate() {
            let m = v.as_f64();
            if !m.is_finite() {
                return Err(Error::NonFinitePlaintext { index: i, value: m });
            }
            let r = noise.sample(rng);
            let d = m - r;
            c00[i] = F::from_f64(r + d * p[0][0]);
            c01[i] = F::from_f64(d * p[0][1]);
            c10[i] = F::from_f64(d * p[1][0]);
            c11[i] = F::from_f64(r + d * p[1][1]);
        }
        Ok(EncryptedTensor { data })
    }

    /// Encrypts a tensor with fresh randomness from the thread-local CSPRNG.
    pub fn encrypt_tensor<F: Real>(&self, x: &ArrayViewD<'_, F>) -> Result<EncryptedTensor<F>> {
        self.encrypt_tensor_with(x, &mut rand::rng())
    }

    /// Encrypts a slice as a 1-D tensor.
    pub fn encrypt_slice<F: Real>(&self, xs: &[F]) -> Result<EncryptedTensor<F>> {
        let view = ArrayViewD::from_shape(IxDyn(&[xs.len()]), xs)
            .map_err(|_| Error::InvalidShape { shape: vec![xs.len()], reason: "cannot view slice" })?;
        self.encrypt_tensor(&view)
    }

    /// Decrypts the message lane of every element.
    pub fn decrypt_tensor<F: Real>(&self, c: &EncryptedTensor<F>) -> ArrayD<F> {
        lane(c, self.decryption_weights())
    }

    /// Decrypts the random lane of every element (the shadow computation on noise).
    pub fn decrypt_noise_tensor<F: Real>(&self, c: &EncryptedTensor<F>) -> ArrayD<F> {
        lane(c, self.noise_lane_weights())
    }
}

fn lane<F: Real>(c: &EncryptedTensor<F>, w: [[f64; 2]; 2]) -> ArrayD<F> {
    let [p0, p1, p2, p3] = c.plane_slices();
    let out: Vec<F> = (0..c.len())
        .map(|i| {
            F::from_f64(
                w[0][0] * p0[i].as_f64()
                    + w[0][1] * p1[i].as_f64()
                    + w[1][0] * p2[i].as_f64()
                    + w[1][1] * p3[i].as_f64(),
            )
        })
        .collect();
    ArrayD::from_shape_vec(IxDyn(c.shape()), out).expect("shape matches")
}
