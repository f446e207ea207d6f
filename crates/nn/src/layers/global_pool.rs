//! Global average pooling: `[C, H, W]` to `[C]`, the mean of each channel — linear: ring-only.
//!
//! It replaces a large `flatten` + `dense` head by one value per channel, so a convolutional network
//! needs far fewer weights (and multiply-adds) at the end, and the whole layer stays ring-only on
//! ciphertexts: a sum and a public scale on each of the four planes.

use ndarray::{ArrayD, Axis, IxDyn};

use super::{Batch, LayerKind, Saved, dims4};
use crate::algebra::Algebra;
use crate::error::{Error, Result};

/// The mean of every channel over all its positions.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct GlobalAvgPool;

impl LayerKind for GlobalAvgPool {
    fn name(&self) -> &'static str {
        "global_avgpool"
    }

    fn is_ring_only(&self) -> bool {
        true
    }

    fn output_shape(&self, input: &[usize]) -> Result<Vec<usize>> {
        match *input {
            [c, h, w] if h * w > 0 => Ok(vec![c]),
            _ => Err(Error::shape("global_avgpool", "[C, H, W] with H, W > 0", input)),
        }
    }

    fn infer(&self, _params: &[ArrayD<f32>], x: Batch) -> Result<Batch> {
        let [b, c, h, w] = dims4("global_avgpool", x.data.shape())?;
        let flat = x.data.as_standard_layout();
        let flat = flat.view().into_shape_with_order((b * c, h * w)).expect("standard layout");
        let inv = 1.0 / (h * w) as f32;
        let mean = flat.sum_axis(Axis(1)).mapv(|v| v * inv);
        let data = mean.into_shape_with_order(IxDyn(&[b, c])).expect("sizes match");
        Ok(x.with(data))
    }

    fn forward<A: Algebra>(
        &self,
        alg: &A,
        _params: &[A::Tensor],
        x: &A::Tensor,
    ) -> Result<(A::Tensor, Saved<A::Tensor>)> {
        let s = alg.shape(x);
        let [n, c, h, w] = dims4("global_avgpool", &s)?;
        let rows = alg.reshape(x, &[n * c, h * w])?;
        let weights = alg.public(ArrayD::from_elem(IxDyn(&[h * w, 1]), 1.0 / (h * w) as f32))?;
        let y = alg.matmul(&rows, false, &weights, false)?; // [N·C, 1]
        Ok((alg.reshape(&y, &[n, c])?, Saved::keep_shape(s)))
    }

    fn backward<A: Algebra>(
        &self,
        alg: &A,
        _params: &[A::Tensor],
        saved: Saved<A::Tensor>,
        g: A::Tensor,
    ) -> Result<(A::Tensor, Vec<A::Tensor>)> {
        let [n, c, h, w] = dims4("global_avgpool", &saved.shape)?;
        let g = alg.reshape(&g, &[n * c, 1])?;
        let spread = alg.public(ArrayD::from_elem(IxDyn(&[1, h * w]), 1.0 / (h * w) as f32))?;
        let dx = alg.matmul(&g, false, &spread, false)?; // every position gets g/(H·W)
        Ok((alg.reshape(&dx, &saved.shape)?, vec![]))
    }
}
