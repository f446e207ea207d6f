//! Fully connected layer `y = x·W + b` — linear: ring-only on ciphertexts.

use ndarray::{ArrayD, Axis, Ix1, Ix2, IxDyn};
use rand_chacha::ChaCha8Rng;

use super::{Batch, LayerKind, Saved, he_uniform, mismatch, param};
use crate::algebra::Algebra;
use crate::error::{Error, Result};

/// A fully connected layer from `inputs` to `outputs` values per sample: weight `[inputs, outputs]`,
/// bias `[outputs]`. On ciphertexts: one GEMM on the four stacked planes; the bias `b·I` only touches the
/// `c00` and `c11` planes — ring-only.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Dense {
    /// Values per input sample (the input must be 1-D per sample).
    pub inputs: usize,
    /// Values per output sample.
    pub outputs: usize,
}

impl LayerKind for Dense {
    fn name(&self) -> &'static str {
        "dense"
    }

    fn describe(&self) -> String {
        format!("dense {}->{}", self.inputs, self.outputs)
    }

    fn is_ring_only(&self) -> bool {
        true
    }

    fn param_shapes(&self) -> Vec<Vec<usize>> {
        vec![vec![self.inputs, self.outputs], vec![self.outputs]]
    }

    fn init(&self, rng: &mut ChaCha8Rng) -> Vec<ArrayD<f32>> {
        vec![he_uniform(&[self.inputs, self.outputs], self.inputs, rng), ArrayD::zeros(IxDyn(&[self.outputs]))]
    }

    fn output_shape(&self, input: &[usize]) -> Result<Vec<usize>> {
        if input != [self.inputs] {
            return Err(Error::shape("dense", format!("[{}]", self.inputs), input));
        }
        Ok(vec![self.outputs])
    }

    fn multiply_adds(&self, _output: &[usize]) -> usize {
        self.inputs * self.outputs
    }

    /// Input and output.
    fn live_elements(&self, input: &[usize], output: &[usize]) -> usize {
        input.iter().product::<usize>() + output.iter().product::<usize>()
    }

    fn infer(&self, params: &[ArrayD<f32>], x: Batch) -> Result<Batch> {
        let (weight, bias) = (param::<Ix2>(params, 0)?, param::<Ix1>(params, 1)?);
        let rows = x.data.shape()[0];
        let x2 = x.data.view().into_dimensionality::<Ix2>().map_err(|_| Error::InvalidModel("dense input".into()))?;
        let mut y = x2.dot(&weight);
        for r in x.bias_ranges(rows) {
            let mut block = y.slice_axis_mut(Axis(0), r.into());
            block += &bias;
        }
        Ok(x.with(y.into_dyn()))
    }

    fn forward<A: Algebra>(
        &self,
        alg: &A,
        params: &[A::Tensor],
        x: &A::Tensor,
    ) -> Result<(A::Tensor, Saved<A::Tensor>)> {
        let [w, b] = params else { return Err(mismatch()) };
        let y = alg.add_row(&alg.matmul(x, false, w, false)?, b)?;
        Ok((y, Saved::keep(vec![x.clone()])))
    }

    fn backward<A: Algebra>(
        &self,
        alg: &A,
        params: &[A::Tensor],
        saved: Saved<A::Tensor>,
        g: A::Tensor,
    ) -> Result<(A::Tensor, Vec<A::Tensor>)> {
        let [w, _] = params else { return Err(mismatch()) };
        let x = saved.one()?;
        let dw = alg.matmul(&x, true, &g, false)?;
        let db = alg.sum_rows(&g)?;
        Ok((alg.matmul(&g, false, w, true)?, vec![dw, db]))
    }
}
