//! Average and max pooling over square windows without padding.

use ndarray::{ArrayD, IxDyn};

use super::planes::spectral_inplace;
use super::{Batch, LayerKind, Saved, dims4};
use crate::algebra::Algebra;
use crate::coefficient;
use crate::error::{Error, Result};
use crate::kernels::{self, Window};
use more_core::ElementFunction;

/// Average pooling: the mean of each `size x size` window, moved by `stride` — linear: ring-only.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct AvgPool {
    /// Window side.
    pub size: usize,
    /// Stride.
    pub stride: usize,
}

/// Max pooling — **uses the 2x2 structure** on ciphertexts: on stacked planes,
/// `max(a, b) = (a + b + |a − b|)/2` with `|·|` evaluated by the spectral formula, folded over the window;
/// in coefficient form, the maximum of each eigenvalue lane `α ± β` (the same function of the
/// eigenvalues).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct MaxPool {
    /// Window side.
    pub size: usize,
    /// Stride.
    pub stride: usize,
}

fn window(size: usize, stride: usize) -> Window {
    Window { kh: size, kw: size, stride, padding: 0 }
}

fn describe(name: &str, size: usize, stride: usize) -> String {
    format!("{name} {size}x{size} stride {stride}")
}

fn output_shape(op: &'static str, size: usize, stride: usize, input: &[usize]) -> Result<Vec<usize>> {
    match *input {
        [c, h, w] => match window(size, stride).output_hw(h, w) {
            Some((oh, ow)) => Ok(vec![c, oh, ow]),
            None => Err(Error::shape(op, "an input at least as large as the window", input)),
        },
        _ => Err(Error::shape(op, "[C, H, W]", input)),
    }
}

/// `[N, C, oh, ow]` from the pooled values.
fn pooled(values: Vec<f32>, [b, c, h, w]: [usize; 4], size: usize, stride: usize) -> ArrayD<f32> {
    let oh = (h - size) / stride + 1;
    let ow = (w - size) / stride + 1;
    ArrayD::from_shape_vec(IxDyn(&[b, c, oh, ow]), values).expect("sizes match")
}

/// For training: the gather indices of every window element (window element-major), the output shape
/// and the number of outputs `m`.
fn pool_index(size: usize, stride: usize, shape: &[usize]) -> Result<(Vec<usize>, Vec<usize>, usize)> {
    let [n, c, h, w] = dims4("pool", shape)?;
    let (oh, ow) = window(size, stride)
        .output_hw(h, w)
        .ok_or_else(|| Error::shape("pool", "an input larger than the window", shape))?;
    let lists = kernels::pool_indices([n, c, h, w], size, stride);
    let m = lists[0].len();
    Ok((lists.concat(), vec![n, c, oh, ow], m))
}

impl LayerKind for AvgPool {
    fn name(&self) -> &'static str {
        "avgpool"
    }

    fn describe(&self) -> String {
        describe("avgpool", self.size, self.stride)
    }

    fn is_ring_only(&self) -> bool {
        true
    }

    fn output_shape(&self, input: &[usize]) -> Result<Vec<usize>> {
        output_shape("avgpool", self.size, self.stride, input)
    }

    /// Input, the index table (`k²` indices per output) and the output.
    fn live_elements(&self, input: &[usize], output: &[usize]) -> usize {
        input.iter().product::<usize>() + (2 * self.size * self.size + 1) * output.iter().product::<usize>()
    }

    fn infer(&self, _params: &[ArrayD<f32>], x: Batch) -> Result<Batch> {
        let shape = dims4("pool", x.data.shape())?;
        let idx = kernels::pool_indices(shape, self.size, self.stride);
        let src = x.data.as_standard_layout();
        let src = src.as_slice().expect("standard layout");
        let inv = 1.0 / (self.size * self.size) as f32;
        let mut out = vec![0.0f32; idx[0].len()];
        for list in &idx {
            for (o, &i) in out.iter_mut().zip(list) {
                *o += src[i];
            }
        }
        out.iter_mut().for_each(|v| *v *= inv);
        Ok(x.with(pooled(out, shape, self.size, self.stride)))
    }

    fn forward<A: Algebra>(
        &self,
        alg: &A,
        _params: &[A::Tensor],
        x: &A::Tensor,
    ) -> Result<(A::Tensor, Saved<A::Tensor>)> {
        let s = alg.shape(x);
        let (idx, out, m) = pool_index(self.size, self.stride, &s)?;
        let k2 = self.size * self.size;
        let g = alg.gather(x, &idx, &[k2, m])?;
        let y = alg.scale(&alg.sum_rows(&g)?, 1.0 / k2 as f32)?;
        Ok((alg.reshape(&y, &out)?, Saved::keep_shape(s)))
    }

    fn backward<A: Algebra>(
        &self,
        alg: &A,
        _params: &[A::Tensor],
        saved: Saved<A::Tensor>,
        g: A::Tensor,
    ) -> Result<(A::Tensor, Vec<A::Tensor>)> {
        let s = saved.shape;
        let (idx, _, m) = pool_index(self.size, self.stride, &s)?;
        let k2 = self.size * self.size;
        let g1 = alg.reshape(&g, &[1, m])?;
        let ones = alg.public(ArrayD::from_elem(IxDyn(&[k2, 1]), 1.0 / k2 as f32))?;
        let spread = alg.matmul(&ones, false, &g1, false)?;
        Ok((alg.scatter_add(&spread, &idx, &s)?, vec![]))
    }
}

/// `acc ← max(acc, next) = (acc + next + |acc − next|)/2` on stacked planes; `|·|` by the spectral formula
/// (uses the 2x2 structure).
fn spectral_max(acc: &mut [f32], next: &[f32]) -> Result<()> {
    let mut diff: Vec<f32> = acc.iter().zip(next).map(|(a, b)| a - b).collect();
    spectral_inplace(&mut diff, ElementFunction::Abs)?;
    for ((a, &b), &d) in acc.iter_mut().zip(next).zip(&diff) {
        *a = 0.5 * (*a + b + d);
    }
    Ok(())
}

impl LayerKind for MaxPool {
    fn name(&self) -> &'static str {
        "maxpool"
    }

    fn describe(&self) -> String {
        describe("maxpool", self.size, self.stride)
    }

    fn is_ring_only(&self) -> bool {
        false
    }

    fn output_shape(&self, input: &[usize]) -> Result<Vec<usize>> {
        output_shape("maxpool", self.size, self.stride, input)
    }

    /// Input, the index table and three outputs' worth (accumulator, next window, difference).
    fn live_elements(&self, input: &[usize], output: &[usize]) -> usize {
        input.iter().product::<usize>() + (2 * self.size * self.size + 3) * output.iter().product::<usize>()
    }

    fn infer(&self, _params: &[ArrayD<f32>], x: Batch) -> Result<Batch> {
        let shape = dims4("pool", x.data.shape())?;
        let idx = kernels::pool_indices(shape, self.size, self.stride);
        if x.is_coefficients() {
            // The rows are [α; β]: to eigenvalue lanes [α + β; α − β], the plaintext maximum of each
            // lane, and back (the pooled output keeps the two halves in order).
            let mut lanes = x.data.as_standard_layout().into_owned();
            coefficient::to_lanes(lanes.as_slice_mut().expect("standard layout"));
            let src = lanes.as_slice().expect("standard layout");
            let mut acc: Vec<f32> = idx[0].iter().map(|&i| src[i]).collect();
            for list in &idx[1..] {
                acc.iter_mut().zip(list).for_each(|(a, &i)| *a = a.max(src[i]));
            }
            coefficient::from_lanes(&mut acc);
            return Ok(x.with(pooled(acc, shape, self.size, self.stride)));
        }
        let src = x.data.as_standard_layout();
        let src = src.as_slice().expect("standard layout");
        let gather = |list: &Vec<usize>| list.iter().map(|&i| src[i]).collect::<Vec<f32>>();
        let mut acc = gather(&idx[0]);
        for list in &idx[1..] {
            let next = gather(list);
            if x.is_encrypted() {
                spectral_max(&mut acc, &next)?;
            } else {
                acc.iter_mut().zip(&next).for_each(|(a, &b)| *a = a.max(b));
            }
        }
        Ok(x.with(pooled(acc, shape, self.size, self.stride)))
    }

    fn forward<A: Algebra>(
        &self,
        alg: &A,
        _params: &[A::Tensor],
        x: &A::Tensor,
    ) -> Result<(A::Tensor, Saved<A::Tensor>)> {
        let s = alg.shape(x);
        let (idx, out, m) = pool_index(self.size, self.stride, &s)?;
        let k2 = self.size * self.size;
        let mut acc = alg.gather(x, &idx[..m], &[m])?;
        let mut masks = Vec::with_capacity(k2 - 1);
        for j in 1..k2 {
            let next = alg.gather(x, &idx[j * m..(j + 1) * m], &[m])?;
            let d = alg.sub(&acc, &next)?;
            // max(a, b) = (a + b + |a − b|)/2 — |·| uses the 2x2 structure; the mask step(a − b) records
            // which side won, for the backward pass.
            let abs = alg.map(&d, ElementFunction::Abs)?;
            masks.push(alg.map(&d, ElementFunction::Step)?);
            acc = alg.scale(&alg.add(&alg.add(&acc, &next)?, &abs)?, 0.5)?;
        }
        Ok((alg.reshape(&acc, &out)?, Saved { tensors: masks, shape: s }))
    }

    fn backward<A: Algebra>(
        &self,
        alg: &A,
        _params: &[A::Tensor],
        saved: Saved<A::Tensor>,
        g: A::Tensor,
    ) -> Result<(A::Tensor, Vec<A::Tensor>)> {
        let (s, masks) = (saved.shape, saved.tensors);
        let (idx, _, m) = pool_index(self.size, self.stride, &s)?;
        let mut g = alg.reshape(&g, &[m])?;
        let mut dx = None;
        // Undo the fold from the last step: acc_j = max(acc_{j−1}, x_j).
        for (j, mask) in masks.iter().enumerate().rev() {
            let to_acc = alg.mul(&g, mask)?;
            let to_next = alg.sub(&g, &to_acc)?;
            let part = alg.scatter_add(&to_next, &idx[(j + 1) * m..(j + 2) * m], &s)?;
            dx = Some(match dx {
                None => part,
                Some(d) => alg.add(&d, &part)?,
            });
            g = to_acc;
        }
        let part = alg.scatter_add(&g, &idx[..m], &s)?;
        let dx = match dx {
            None => part,
            Some(d) => alg.add(&d, &part)?,
        };
        Ok((dx, vec![]))
    }
}
