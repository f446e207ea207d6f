//! The training seam: a tensor algebra the layers, losses and optimizers are generic over.
//!
//! Plaintext training uses [`crate::Plain`] (`f32` ndarray). An encrypted algebra (crate `more-enctrain`)
//! implements the same trait on ciphertexts, so forward, backward, loss and optimizer are *the same code*
//! on plaintext and on encrypted data.
//!
//! Every operation is documented as **ring-only** (`+`, `−`, `·`, public scalars and public tensors: valid in
//! any homomorphic scheme) or **2x2** (needs the 2x2 structure of MORE ciphertexts: the spectral formula
//! reads the eigenvalues `{m, r}`, i.e. the plaintext). Required methods are the primitives; provided
//! methods are written with them (an implementation may override them for speed, with the same result).
//!
//! Conventions: tensors are row-major n-d arrays; "rows" is axis 0 (the batch). Index lists for
//! [`Algebra::gather`] / [`Algebra::scatter_add`] are flat element indices, with [`PAD`] meaning "zero".

use ndarray::ArrayD;

use more_core::ElementFunction;

use crate::error::Result;
pub use crate::kernels::PAD;
use crate::kernels::Window;

/// A tensor algebra for training: plaintext ([`crate::Plain`]) or ciphertexts (`more-enctrain`).
///
/// Shapes are checked by the implementation; errors are returned, never panics.
pub trait Algebra: Send + Sync {
    /// A tensor (plaintext array, or encrypted tensor in some representation).
    type Tensor: Clone + Send + Sync + std::fmt::Debug;

    /// The shape of a tensor.
    fn shape(&self, t: &Self::Tensor) -> Vec<usize>;

    /// A public (plaintext, non-hiding) tensor `x·I` — ring-only. Used for constants (ones for sums,
    /// one-hot targets of plaintext training) and plaintext weights.
    fn public(&self, values: ArrayD<f32>) -> Result<Self::Tensor>;

    /// A trainable parameter initialised to `init`. Default: [`Self::public`] (`w·I`). An encrypted
    /// algebra may give the random lane its own bounded values here.
    fn parameter(&self, init: ArrayD<f32>) -> Result<Self::Tensor> {
        self.public(init)
    }

    /// Same elements, new shape (same count) — no arithmetic.
    fn reshape(&self, t: &Self::Tensor, shape: &[usize]) -> Result<Self::Tensor>;

    /// Rows `rows` of axis 0 (mini-batch selection) — no arithmetic.
    fn select_rows(&self, t: &Self::Tensor, rows: &[usize]) -> Result<Self::Tensor>;

    /// `out.flat[i] = t.flat[index[i]]` (0 where `index[i] == PAD`), `out` of shape `shape` — no arithmetic.
    /// Used for im2col, transposes/permutations and pooling windows.
    fn gather(&self, t: &Self::Tensor, index: &[usize], shape: &[usize]) -> Result<Self::Tensor>;

    /// The adjoint of gather: `out = 0` of shape `shape`, then `out.flat[index[i]] += t.flat[i]` (skipping
    /// `PAD`) — ring-only. Used for col2im and pooling backward.
    fn scatter_add(&self, t: &Self::Tensor, index: &[usize], shape: &[usize]) -> Result<Self::Tensor>;

    /// Elementwise `a + b` (same shape) — ring-only.
    fn add(&self, a: &Self::Tensor, b: &Self::Tensor) -> Result<Self::Tensor>;

    /// Elementwise `a − b` (same shape) — ring-only.
    fn sub(&self, a: &Self::Tensor, b: &Self::Tensor) -> Result<Self::Tensor>;

    /// Elementwise (Hadamard) product `a ⊙ b` (same shape) — ring-only (ciphertext product).
    fn mul(&self, a: &Self::Tensor, b: &Self::Tensor) -> Result<Self::Tensor>;

    /// `s·a` for a public scalar — ring-only.
    fn scale(&self, a: &Self::Tensor, s: f32) -> Result<Self::Tensor>;

    /// `a + s` (i.e. `a + s·I`) for a public scalar — ring-only.
    fn shift(&self, a: &Self::Tensor, s: f32) -> Result<Self::Tensor>;

    /// 2-D matrix product `op(a)·op(b)` where `op` transposes when the flag is set — ring-only.
    fn matmul(&self, a: &Self::Tensor, transpose_a: bool, b: &Self::Tensor, transpose_b: bool) -> Result<Self::Tensor>;

    /// An elementwise function (see [`ElementFunction`] for which are ring-only).
    fn map(&self, a: &Self::Tensor, f: ElementFunction) -> Result<Self::Tensor>;

    /// `a[n, m] + b[m]` broadcast over rows (bias) — ring-only. Default: `a + ones[n,1]·b[1,m]`.
    fn add_row(&self, a: &Self::Tensor, b: &Self::Tensor) -> Result<Self::Tensor> {
        let s = self.shape(a);
        let m = self.shape(b).iter().product::<usize>();
        let ones = self.public(ArrayD::ones(ndarray::IxDyn(&[s[0], 1])))?;
        let b2 = self.reshape(b, &[1, m])?;
        let full = self.matmul(&ones, false, &b2, false)?;
        self.add(a, &full)
    }

    /// `Σ_rows a[n, m] -> [m]` (bias gradient) — ring-only. Default: `ones[1,n]·a`.
    fn sum_rows(&self, a: &Self::Tensor) -> Result<Self::Tensor> {
        let s = self.shape(a);
        let ones = self.public(ArrayD::ones(ndarray::IxDyn(&[1, s[0]])))?;
        let r = self.matmul(&ones, false, a, false)?;
        self.reshape(&r, &[s[1]])
    }

    /// `Σ_cols a[n, m] -> [n, 1]` (softmax denominators) — ring-only. Default: `a·ones[m,1]`.
    fn row_sums(&self, a: &Self::Tensor) -> Result<Self::Tensor> {
        let s = self.shape(a);
        let ones = self.public(ArrayD::ones(ndarray::IxDyn(&[s[1], 1])))?;
        self.matmul(a, false, &ones, false)
    }

    /// `a[n, m] ⊙ c[n, 1]` broadcast over columns — ring-only. Default: `a ⊙ (c·ones[1,m])`.
    fn mul_col(&self, a: &Self::Tensor, c: &Self::Tensor) -> Result<Self::Tensor> {
        let s = self.shape(a);
        let ones = self.public(ArrayD::ones(ndarray::IxDyn(&[1, s[1]])))?;
        let full = self.matmul(c, false, &ones, false)?;
        self.mul(a, &full)
    }

    /// Sum of all elements as shape `[1]` — ring-only.
    fn sum_all(&self, a: &Self::Tensor) -> Result<Self::Tensor> {
        let n = self.shape(a).iter().product::<usize>();
        let flat = self.reshape(a, &[1, n])?;
        let ones = self.public(ArrayD::ones(ndarray::IxDyn(&[n, 1])))?;
        let r = self.matmul(&flat, false, &ones, false)?;
        self.reshape(&r, &[1])
    }

    /// Unfolds `x: [N, C, H, W]` into `[N·oh·ow, C·kh·kw]` (see [`crate::kernels::im2col`]) — no
    /// arithmetic. Default: [`Self::gather`] with [`im2col_indices`].
    fn im2col(&self, x: &Self::Tensor, win: Window) -> Result<Self::Tensor> {
        let s = self.shape(x);
        let (index, out) = im2col_indices(&s, win)?;
        self.gather(x, &index, &out)
    }

    /// The adjoint of [`Self::im2col`]: sums `[N·oh·ow, C·kh·kw]` back into `shape = [N, C, H, W]` —
    /// ring-only. Default: [`Self::scatter_add`].
    fn col2im(&self, cols: &Self::Tensor, shape: &[usize], win: Window) -> Result<Self::Tensor> {
        let (index, _) = im2col_indices(shape, win)?;
        self.scatter_add(cols, &index, shape)
    }

    /// Row-wise softmax of `[n, m]` logits: `exp` (2x2), row sums (ring), `Recip` (2x2), product (ring).
    /// [`crate::Plain`] overrides it with the max-subtracted form (same value, no overflow).
    fn softmax_rows(&self, logits: &Self::Tensor) -> Result<Self::Tensor> {
        let e = self.map(logits, ElementFunction::Exp)?;
        let s = self.row_sums(&e)?;
        let inv = self.map(&s, ElementFunction::Recip)?;
        self.mul_col(&e, &inv)
    }
}

/// Reveals tensors to whoever may see them — the key owner for an encrypted algebra. The trainer uses it
/// only for reporting (loss, accuracy, early stopping); the algebra itself never needs the key.
pub trait Reveal<A: Algebra + ?Sized>: Send + Sync {
    /// The plaintext values of `t`.
    fn reveal(&self, t: &A::Tensor) -> Result<ArrayD<f32>>;
}

/// The gather indices of im2col for an input of shape `[N, C, H, W]`, and the output shape.
pub fn im2col_indices(shape: &[usize], win: Window) -> Result<(Vec<usize>, Vec<usize>)> {
    let &[n, c, h, w] = shape else {
        return Err(crate::Error::shape("im2col", "[N, C, H, W]", shape));
    };
    let (oh, ow) =
        win.output_hw(h, w).ok_or_else(|| crate::Error::shape("im2col", "an input larger than the kernel", shape))?;
    let k = c * win.kh * win.kw;
    let mut index = Vec::with_capacity(n * oh * ow * k);
    for b in 0..n {
        for oy in 0..oh {
            for ox in 0..ow {
                for ci in 0..c {
                    for ky in 0..win.kh {
                        for kx in 0..win.kw {
                            let y = (oy * win.stride + ky).checked_sub(win.padding).filter(|&y| y < h);
                            let x = (ox * win.stride + kx).checked_sub(win.padding).filter(|&x| x < w);
                            index.push(match (y, x) {
                                (Some(y), Some(x)) => ((b * c + ci) * h + y) * w + x,
                                _ => PAD,
                            });
                        }
                    }
                }
            }
        }
    }
    Ok((index, vec![n * oh * ow, k]))
}
