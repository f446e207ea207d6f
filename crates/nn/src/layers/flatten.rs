//! Flatten: `[C, H, W]` to `[C·H·W]` per sample — no arithmetic (ring-only).

use ndarray::{ArrayD, IxDyn};

use super::{Batch, LayerKind, Saved};
use crate::algebra::Algebra;
use crate::error::Result;

/// Flattens every sample to one dimension.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Flatten;

impl LayerKind for Flatten {
    fn name(&self) -> &'static str {
        "flatten"
    }

    fn is_ring_only(&self) -> bool {
        true
    }

    fn output_shape(&self, input: &[usize]) -> Result<Vec<usize>> {
        Ok(vec![input.iter().product()])
    }

    /// Input and a layout copy.
    fn live_elements(&self, input: &[usize], _output: &[usize]) -> usize {
        2 * input.iter().product::<usize>()
    }

    fn infer(&self, _params: &[ArrayD<f32>], x: Batch) -> Result<Batch> {
        let rows = x.data.shape()[0];
        let n = x.data.len() / rows.max(1);
        let d = if x.data.is_standard_layout() { x.data } else { x.data.as_standard_layout().into_owned() };
        Ok(Batch { data: d.into_shape_with_order(IxDyn(&[rows, n])).expect("sizes match"), planes: x.planes })
    }

    fn forward<A: Algebra>(
        &self,
        alg: &A,
        _params: &[A::Tensor],
        x: &A::Tensor,
    ) -> Result<(A::Tensor, Saved<A::Tensor>)> {
        let s = alg.shape(x);
        let y = alg.reshape(x, &[s[0], s[1..].iter().product()])?;
        Ok((y, Saved::keep_shape(s)))
    }

    fn backward<A: Algebra>(
        &self,
        alg: &A,
        _params: &[A::Tensor],
        saved: Saved<A::Tensor>,
        g: A::Tensor,
    ) -> Result<(A::Tensor, Vec<A::Tensor>)> {
        Ok((alg.reshape(&g, &saved.shape)?, vec![]))
    }
}
