//! Softmax over the last axis — **uses the 2x2 structure** on ciphertexts: on stacked planes `exp` by
//! the spectral formula, then a ciphertext inverse and product (ring operations); in coefficient form the
//! softmax of each eigenvalue lane `α ± β` (the same function of the eigenvalues).

use ndarray::{Array, ArrayD, Axis, Dimension, Ix2, IxDyn};

use more_core::{ElementFunction, EncryptedTensor};

use super::{Batch, LayerKind, Saved};
use crate::algebra::Algebra;
use crate::coefficient;
use crate::error::{Error, Result};

/// Softmax over each sample's values (the input must be 1-D per sample).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Softmax;

/// Plaintext softmax of every row (last axis) in place, with the maximum subtracted first so it cannot
/// overflow: the one plaintext softmax of inference, [`crate::Plain`] training and the key owner's lanes.
pub fn softmax_rows_inplace<D: Dimension>(x: &mut Array<f32, D>) {
    for mut row in x.rows_mut() {
        let m = row.fold(f32::NEG_INFINITY, |a, &b| a.max(b));
        row.mapv_inplace(|v| (v - m).exp());
        let s = row.sum();
        row.mapv_inplace(|v| v / s);
    }
}

/// Softmax over the last axis of stacked planes `[4N, K]`: `exp` (2x2 structure), a row sum (ring), its
/// ciphertext inverse and a ciphertext product (ring).
fn encrypted_softmax(data: ArrayD<f32>) -> Result<ArrayD<f32>> {
    let rows = data.shape()[0] / 4;
    let k = data.shape()[1];
    let t = EncryptedTensor::from_data(
        data.into_shape_with_order(IxDyn(&[4, rows, k])).map_err(|_| Error::NonFinite("softmax"))?,
    )?;
    let e = t.apply(ElementFunction::Exp)?;
    let sums = e.data().sum_axis(Axis(2)); // [4, rows]
    let inv = EncryptedTensor::from_data(sums)?.inverse()?;
    let inv_b = inv.data().clone().insert_axis(Axis(2));
    let inv_full = inv_b.broadcast(IxDyn(&[4, rows, k])).expect("broadcast").to_owned();
    let p = e.mul(&EncryptedTensor::from_data(inv_full)?)?;
    Ok(p.into_data().into_shape_with_order(IxDyn(&[4 * rows, k])).expect("sizes match"))
}

impl LayerKind for Softmax {
    fn name(&self) -> &'static str {
        "softmax"
    }

    fn is_ring_only(&self) -> bool {
        false
    }

    fn output_shape(&self, input: &[usize]) -> Result<Vec<usize>> {
        if input.len() != 1 {
            return Err(Error::shape("softmax", "a 1-D input", input));
        }
        Ok(input.to_vec())
    }

    /// Input and five outputs' worth (the spectral exponential's lanes and the normalisation).
    fn live_elements(&self, input: &[usize], output: &[usize]) -> usize {
        input.iter().product::<usize>() + 5 * output.iter().product::<usize>()
    }

    fn infer(&self, _params: &[ArrayD<f32>], x: Batch) -> Result<Batch> {
        let data = if x.is_coefficients() {
            // Rows [α; β] to eigenvalue lanes [α + β; α − β], a plaintext softmax of every lane's row,
            // and back.
            let d = x.data.into_dimensionality::<Ix2>().map_err(|_| Error::InvalidModel("softmax".into()))?;
            let mut d = if d.is_standard_layout() { d } else { d.as_standard_layout().into_owned() };
            coefficient::to_lanes(d.as_slice_mut().expect("standard layout"));
            softmax_rows_inplace(&mut d);
            coefficient::from_lanes(d.as_slice_mut().expect("standard layout"));
            d.into_dyn()
        } else if x.is_encrypted() {
            encrypted_softmax(x.data)?
        } else {
            let mut d = x.data.into_dimensionality::<Ix2>().map_err(|_| Error::InvalidModel("softmax".into()))?;
            softmax_rows_inplace(&mut d);
            d.into_dyn()
        };
        Ok(Batch { data, planes: x.planes })
    }

    fn forward<A: Algebra>(
        &self,
        alg: &A,
        _params: &[A::Tensor],
        x: &A::Tensor,
    ) -> Result<(A::Tensor, Saved<A::Tensor>)> {
        let y = alg.softmax_rows(x)?;
        Ok((y.clone(), Saved::keep(vec![y])))
    }

    fn backward<A: Algebra>(
        &self,
        alg: &A,
        _params: &[A::Tensor],
        saved: Saved<A::Tensor>,
        g: A::Tensor,
    ) -> Result<(A::Tensor, Vec<A::Tensor>)> {
        // dx = y ⊙ (g − Σ_j g_j y_j)
        let y = saved.one()?;
        let dot = alg.row_sums(&alg.mul(&g, &y)?)?;
        let ones = alg.public(ArrayD::ones(IxDyn(&alg.shape(&y))))?;
        let centred = alg.sub(&g, &alg.mul_col(&ones, &dot)?)?;
        Ok((alg.mul(&y, &centred)?, vec![]))
    }
}
