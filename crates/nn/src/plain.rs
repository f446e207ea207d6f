//! [`Plain`]: the [`Algebra`] of ordinary `f32` arrays, used for plaintext training.

use ndarray::{ArrayD, ArrayView2, Axis, Ix2, IxDyn};

use more_core::ElementFunction;

use crate::algebra::{Algebra, Reveal};
use crate::error::{Error, Result};
use crate::kernels::{self, Window};

/// Plaintext `f32` tensors (`ndarray`, GEMM by `matrixmultiply`).
#[derive(Debug, Clone, Copy, Default)]
pub struct Plain;

fn same(op: &'static str, a: &ArrayD<f32>, b: &ArrayD<f32>) -> Result<()> {
    if a.shape() != b.shape() {
        return Err(Error::shape(op, format!("{:?}", a.shape()), b.shape()));
    }
    Ok(())
}

fn as2<'a>(op: &'static str, a: &'a ArrayD<f32>) -> Result<ArrayView2<'a, f32>> {
    a.view().into_dimensionality::<Ix2>().map_err(|_| Error::shape(op, "a 2-D tensor", a.shape()))
}

fn count(shape: &[usize]) -> usize {
    shape.iter().product()
}

impl Algebra for Plain {
    type Tensor = ArrayD<f32>;

    fn shape(&self, t: &ArrayD<f32>) -> Vec<usize> {
        t.shape().to_vec()
    }

    fn public(&self, values: ArrayD<f32>) -> Result<ArrayD<f32>> {
        Ok(values)
    }

    fn reshape(&self, t: &ArrayD<f32>, shape: &[usize]) -> Result<ArrayD<f32>> {
        if count(shape) != t.len() {
            return Err(Error::shape("reshape", format!("{} elements", count(shape)), t.shape()));
        }
        Ok(t.as_standard_layout().into_owned().into_shape_with_order(IxDyn(shape)).expect("count checked"))
    }

    fn select_rows(&self, t: &ArrayD<f32>, rows: &[usize]) -> Result<ArrayD<f32>> {
        if t.ndim() == 0 || rows.iter().any(|&r| r >= t.shape()[0]) {
            return Err(Error::shape("select_rows", "row indices within axis 0", t.shape()));
        }
        Ok(t.select(Axis(0), rows))
    }

    fn gather(&self, t: &ArrayD<f32>, index: &[usize], shape: &[usize]) -> Result<ArrayD<f32>> {
        kernels::gather(t, index, shape)
    }

    fn scatter_add(&self, t: &ArrayD<f32>, index: &[usize], shape: &[usize]) -> Result<ArrayD<f32>> {
        kernels::scatter_add(t, index, shape)
    }

    fn add(&self, a: &ArrayD<f32>, b: &ArrayD<f32>) -> Result<ArrayD<f32>> {
        same("add", a, b)?;
        Ok(a + b)
    }

    fn sub(&self, a: &ArrayD<f32>, b: &ArrayD<f32>) -> Result<ArrayD<f32>> {
        same("sub", a, b)?;
        Ok(a - b)
    }

    fn mul(&self, a: &ArrayD<f32>, b: &ArrayD<f32>) -> Result<ArrayD<f32>> {
        same("mul", a, b)?;
        Ok(a * b)
    }

    fn scale(&self, a: &ArrayD<f32>, s: f32) -> Result<ArrayD<f32>> {
        Ok(a * s)
    }

    fn shift(&self, a: &ArrayD<f32>, s: f32) -> Result<ArrayD<f32>> {
        Ok(a + s)
    }

    fn matmul(&self, a: &ArrayD<f32>, ta: bool, b: &ArrayD<f32>, tb: bool) -> Result<ArrayD<f32>> {
        let a2 = as2("matmul", a)?;
        let b2 = as2("matmul", b)?;
        let a2 = if ta { a2.reversed_axes() } else { a2 };
        let b2 = if tb { b2.reversed_axes() } else { b2 };
        if a2.ncols() != b2.nrows() {
            return Err(Error::shape("matmul", format!("{} rows on the right", a2.ncols()), b2.shape()));
        }
        Ok(a2.dot(&b2).into_dyn())
    }

    fn map(&self, a: &ArrayD<f32>, f: ElementFunction) -> Result<ArrayD<f32>> {
        Ok(a.mapv(|x| f.eval_f32(x)))
    }

    fn add_row(&self, a: &ArrayD<f32>, b: &ArrayD<f32>) -> Result<ArrayD<f32>> {
        let a2 = as2("add_row", a)?;
        if b.len() != a2.ncols() {
            return Err(Error::shape("add_row", format!("[{}]", a2.ncols()), b.shape()));
        }
        let b1 = b.view().into_shape_with_order(a2.ncols()).map_err(|_| Error::shape("add_row", "1-D", b.shape()))?;
        Ok((&a2 + &b1).into_dyn())
    }

    fn sum_rows(&self, a: &ArrayD<f32>) -> Result<ArrayD<f32>> {
        let a2 = as2("sum_rows", a)?;
        Ok(a2.sum_axis(Axis(0)).into_dyn())
    }

    fn row_sums(&self, a: &ArrayD<f32>) -> Result<ArrayD<f32>> {
        let a2 = as2("row_sums", a)?;
        Ok(a2.sum_axis(Axis(1)).insert_axis(Axis(1)).into_dyn())
    }

    fn mul_col(&self, a: &ArrayD<f32>, c: &ArrayD<f32>) -> Result<ArrayD<f32>> {
        let a2 = as2("mul_col", a)?;
        let c2 = as2("mul_col", c)?;
        if c2.dim() != (a2.nrows(), 1) {
            return Err(Error::shape("mul_col", format!("[{}, 1]", a2.nrows()), c.shape()));
        }
        Ok((&a2 * &c2).into_dyn())
    }

    fn sum_all(&self, a: &ArrayD<f32>) -> Result<ArrayD<f32>> {
        Ok(ArrayD::from_elem(IxDyn(&[1]), a.sum()))
    }

    fn im2col(&self, x: &ArrayD<f32>, win: Window) -> Result<ArrayD<f32>> {
        let x4 = x
            .view()
            .into_dimensionality::<ndarray::Ix4>()
            .map_err(|_| Error::shape("im2col", "[N, C, H, W]", x.shape()))?;
        let (_, _, h, w) = x4.dim();
        win.output_hw(h, w).ok_or_else(|| Error::shape("im2col", "an input larger than the kernel", x.shape()))?;
        Ok(kernels::im2col(x4, win).into_dyn())
    }

    fn col2im(&self, cols: &ArrayD<f32>, shape: &[usize], win: Window) -> Result<ArrayD<f32>> {
        let &[n, c, h, w] = shape else {
            return Err(Error::shape("col2im", "[N, C, H, W]", shape));
        };
        let (oh, ow) =
            win.output_hw(h, w).ok_or_else(|| Error::shape("col2im", "an input larger than the kernel", shape))?;
        let c2 = as2("col2im", cols)?;
        if c2.dim() != (n * oh * ow, c * win.kh * win.kw) {
            return Err(Error::shape("col2im", format!("[{}, {}]", n * oh * ow, c * win.kh * win.kw), cols.shape()));
        }
        Ok(kernels::col2im(c2, [n, c, h, w], win).into_dyn())
    }

    fn softmax_rows(&self, logits: &ArrayD<f32>) -> Result<ArrayD<f32>> {
        let mut d = as2("softmax_rows", logits)?.to_owned();
        crate::layers::softmax::softmax_rows_inplace(&mut d);
        Ok(d.into_dyn())
    }
}

impl Reveal<Plain> for Plain {
    fn reveal(&self, t: &ArrayD<f32>) -> Result<ArrayD<f32>> {
        Ok(t.clone())
    }
}
