//! 2-D convolution over `[C, H, W]` inputs — linear: ring-only on ciphertexts.

use ndarray::{ArrayD, Axis, Ix1, Ix4, IxDyn};
use rand_chacha::ChaCha8Rng;

use super::{Batch, LayerKind, Saved, he_uniform, mismatch, param};
use crate::algebra::Algebra;
use crate::error::{Error, Result};
use crate::kernels::{self, Window};

/// A 2-D convolution (cross-correlation, square stride and zero padding): weight
/// `[out_channels, in_channels, kh, kw]`, bias `[out_channels]`. Inference unfolds the input (im2col) and
/// runs one GEMM for the whole batch — for ciphertexts, the four stacked planes; the bias `b·I` only
/// touches the `c00` and `c11` planes — ring-only.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Conv2d {
    /// Input channels.
    pub in_channels: usize,
    /// Output channels.
    pub out_channels: usize,
    /// Kernel `[height, width]`.
    pub kernel: [usize; 2],
    /// Stride in both directions.
    pub stride: usize,
    /// Zero padding on every side.
    pub padding: usize,
}

impl Conv2d {
    /// The window geometry.
    pub fn window(&self) -> Window {
        Window { kh: self.kernel[0], kw: self.kernel[1], stride: self.stride, padding: self.padding }
    }

    /// Values per output channel's kernel: `in_channels·kh·kw`.
    fn kernel_len(&self) -> usize {
        self.in_channels * self.kernel[0] * self.kernel[1]
    }
}

/// Permutation indices from `[N·P, O]` (GEMM output) to `[N, O, P]` (channels first).
fn nchw_indices(n: usize, o: usize, p: usize) -> Vec<usize> {
    let mut idx = Vec::with_capacity(n * o * p);
    for b in 0..n {
        for c in 0..o {
            for q in 0..p {
                idx.push((b * p + q) * o + c);
            }
        }
    }
    idx
}

/// Permutation indices from `[N, O, P]` back to `[N·P, O]`.
fn nhwc_indices(n: usize, o: usize, p: usize) -> Vec<usize> {
    let mut idx = Vec::with_capacity(n * o * p);
    for b in 0..n {
        for q in 0..p {
            for c in 0..o {
                idx.push((b * o + c) * p + q);
            }
        }
    }
    idx
}

impl LayerKind for Conv2d {
    fn name(&self) -> &'static str {
        "conv2d"
    }

    fn describe(&self) -> String {
        format!(
            "conv2d {}->{} {}x{} stride {} pad {}",
            self.in_channels, self.out_channels, self.kernel[0], self.kernel[1], self.stride, self.padding
        )
    }

    fn is_ring_only(&self) -> bool {
        true
    }

    fn validate(&self) -> Result<()> {
        if self.stride == 0 {
            return Err(Error::InvalidModel("convolution stride 0".into()));
        }
        Ok(())
    }

    fn param_shapes(&self) -> Vec<Vec<usize>> {
        let [kh, kw] = self.kernel;
        vec![vec![self.out_channels, self.in_channels, kh, kw], vec![self.out_channels]]
    }

    fn training_shapes(&self) -> Vec<Vec<usize>> {
        vec![vec![self.out_channels, self.kernel_len()], vec![self.out_channels]]
    }

    fn init(&self, rng: &mut ChaCha8Rng) -> Vec<ArrayD<f32>> {
        let shapes = self.param_shapes();
        vec![he_uniform(&shapes[0], self.kernel_len(), rng), ArrayD::zeros(IxDyn(&shapes[1]))]
    }

    fn output_shape(&self, input: &[usize]) -> Result<Vec<usize>> {
        match *input {
            [ci, h, w] if ci == self.in_channels => match self.window().output_hw(h, w) {
                Some((oh, ow)) => Ok(vec![self.out_channels, oh, ow]),
                None => Err(Error::shape("conv2d", "an input at least as large as the kernel", input)),
            },
            _ => Err(Error::shape("conv2d", format!("[{}, H, W]", self.in_channels), input)),
        }
    }

    fn multiply_adds(&self, output: &[usize]) -> usize {
        output.iter().product::<usize>() * self.kernel_len()
    }

    /// Input, the im2col columns (`C·kh·kw` per output position) and three times the output (the product
    /// and two layout copies).
    fn live_elements(&self, input: &[usize], output: &[usize]) -> usize {
        let positions: usize = output.iter().skip(1).product();
        input.iter().product::<usize>() + self.kernel_len() * positions + 3 * output.iter().product::<usize>()
    }

    fn infer(&self, params: &[ArrayD<f32>], x: Batch) -> Result<Batch> {
        let (weight, bias) = (param::<Ix4>(params, 0)?, param::<Ix1>(params, 1)?);
        let x4 = x.data.view().into_dimensionality::<Ix4>().map_err(|_| Error::InvalidModel("conv input".into()))?;
        let (b, _, h, w) = x4.dim();
        let win = self.window();
        let (oh, ow) = win.output_hw(h, w).ok_or(Error::InvalidModel("conv window".into()))?;
        let p = oh * ow;
        let cols = kernels::im2col_t(x4, win); // [C·kh·kw, B·P]
        let o = self.out_channels;
        let wmat = weight.into_shape_with_order((o, self.kernel_len())).map_err(|_| mismatch())?;
        let mut y = wmat.dot(&cols); // [O, B·P]: one GEMM for the whole (stacked) batch
        let bias = bias.insert_axis(Axis(1));
        for r in x.bias_ranges(b * p) {
            let mut block = y.slice_axis_mut(Axis(1), r.into());
            block += &bias;
        }
        let y = y.as_standard_layout().into_owned().into_shape_with_order((o, b, p)).expect("sizes match");
        let y = y
            .permuted_axes([1, 0, 2])
            .as_standard_layout()
            .into_owned()
            .into_shape_with_order(IxDyn(&[b, o, oh, ow]))
            .expect("sizes match");
        Ok(x.with(y))
    }

    fn forward<A: Algebra>(
        &self,
        alg: &A,
        params: &[A::Tensor],
        x: &A::Tensor,
    ) -> Result<(A::Tensor, Saved<A::Tensor>)> {
        let [w, b] = params else { return Err(mismatch()) };
        let s = alg.shape(x);
        let [n, _, h, wd] = super::dims4("conv2d", &s)?;
        let win = self.window();
        let (oh, ow) =
            win.output_hw(h, wd).ok_or_else(|| Error::shape("conv2d", "an input larger than the kernel", &s))?;
        let o = self.out_channels;
        let cols = alg.im2col(x, win)?;
        let y2 = alg.add_row(&alg.matmul(&cols, false, w, true)?, b)?; // [N·P, O]
        let y = alg.gather(&y2, &nchw_indices(n, o, oh * ow), &[n, o, oh, ow])?;
        Ok((y, Saved { tensors: vec![cols], shape: s }))
    }

    fn backward<A: Algebra>(
        &self,
        alg: &A,
        params: &[A::Tensor],
        saved: Saved<A::Tensor>,
        g: A::Tensor,
    ) -> Result<(A::Tensor, Vec<A::Tensor>)> {
        let [w, _] = params else { return Err(mismatch()) };
        let s = saved.shape.clone();
        let cols = saved.one()?;
        let [n, o, gh, gw] = super::dims4("conv2d", &alg.shape(&g))?;
        let p = gh * gw;
        let g2 = alg.gather(&g, &nhwc_indices(n, o, p), &[n * p, o])?;
        let dw = alg.matmul(&g2, true, &cols, false)?;
        let db = alg.sum_rows(&g2)?;
        let dcols = alg.matmul(&g2, false, w, false)?;
        Ok((alg.col2im(&dcols, &s, self.window())?, vec![dw, db]))
    }
}
