//! Activation layers: an elementwise function ([`ElementFunction`]) — `square` is ring-only, `relu`,
//! `sigmoid` and `tanh` use the 2x2 structure (the spectral formula on four planes, the eigenvalues
//! `α ± β` in coefficient form).

use ndarray::ArrayD;

use more_core::ElementFunction;

use super::planes::{coefficient_map_inplace, relu_planes, spectral_inplace};
use super::{Batch, LayerKind, Saved};
use crate::algebra::Algebra;
use crate::error::{Error, Result};

/// An activation layer applying `function` to every value. Its backward pass is ring-only given the
/// saved input (square: `2x`) or output (sigmoid: `s(1 − s)`, tanh: `1 − t²`); ReLU's uses the step
/// function (2x2 structure).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Elementwise {
    /// The function: `square`, `relu`, `sigmoid` or `tanh`.
    pub function: ElementFunction,
}

/// The functions an activation layer can compute (those with a backward pass below).
pub const ACTIVATIONS: [ElementFunction; 4] =
    [ElementFunction::Square, ElementFunction::Relu, ElementFunction::Sigmoid, ElementFunction::Tanh];

impl LayerKind for Elementwise {
    fn name(&self) -> &'static str {
        self.function.name()
    }

    fn is_ring_only(&self) -> bool {
        self.function.is_ring_only()
    }

    fn validate(&self) -> Result<()> {
        if !ACTIVATIONS.contains(&self.function) {
            return Err(Error::InvalidModel(format!(
                "an activation layer computes square, relu, sigmoid or tanh, not {}",
                self.function
            )));
        }
        Ok(())
    }

    fn output_shape(&self, input: &[usize]) -> Result<Vec<usize>> {
        Ok(input.to_vec())
    }

    /// Input and a layout copy.
    fn live_elements(&self, input: &[usize], _output: &[usize]) -> usize {
        2 * input.iter().product::<usize>()
    }

    fn infer(&self, _params: &[ArrayD<f32>], x: Batch) -> Result<Batch> {
        let f = self.function;
        let encrypted = x.is_encrypted();
        let coefficients = x.is_coefficients();
        let mut d = x.data;
        if !encrypted {
            d.mapv_inplace(|v| f.eval_f32(v));
        } else {
            if !d.is_standard_layout() {
                d = d.as_standard_layout().into_owned();
            }
            let planes = d.as_slice_mut().expect("standard layout");
            if coefficients {
                coefficient_map_inplace(planes, f);
            } else if f == ElementFunction::Relu {
                relu_planes(planes)?;
            } else {
                spectral_inplace(planes, f)?;
            }
        }
        Ok(Batch { data: d, planes: x.planes })
    }

    fn forward<A: Algebra>(
        &self,
        alg: &A,
        _params: &[A::Tensor],
        x: &A::Tensor,
    ) -> Result<(A::Tensor, Saved<A::Tensor>)> {
        let y = alg.map(x, self.function)?;
        Ok(match self.function {
            ElementFunction::Sigmoid | ElementFunction::Tanh => (y.clone(), Saved::keep(vec![y])),
            _ => (y, Saved::keep(vec![x.clone()])),
        })
    }

    fn backward<A: Algebra>(
        &self,
        alg: &A,
        _params: &[A::Tensor],
        saved: Saved<A::Tensor>,
        g: A::Tensor,
    ) -> Result<(A::Tensor, Vec<A::Tensor>)> {
        let s = saved.one()?;
        let dx = match self.function {
            ElementFunction::Square => alg.scale(&alg.mul(&g, &s)?, 2.0)?,
            ElementFunction::Relu => alg.mul(&g, &alg.map(&s, ElementFunction::Step)?)?,
            ElementFunction::Sigmoid => {
                let d = alg.sub(&s, &alg.mul(&s, &s)?)?; // s(1 − s): ring-only
                alg.mul(&g, &d)?
            }
            ElementFunction::Tanh => {
                let d = alg.shift(&alg.scale(&alg.mul(&s, &s)?, -1.0)?, 1.0)?; // 1 − t²: ring-only
                alg.mul(&g, &d)?
            }
            other => return Err(Error::InvalidModel(format!("no backward pass for an activation {other}"))),
        };
        Ok((dx, vec![]))
    }
}
