//! Layers and their inference forward pass, shared by plaintext and encrypted tensors.
//!
//! A layer with plaintext weights is linear (or affine) and acts on each of a ciphertext's four planes
//! independently, so dense, convolution, average pooling and flatten run the *same* GEMM/convolution code on
//! plaintext (`N` rows) and on ciphertexts (the four planes stacked as `4N` rows, one GEMM call). The bias
//! `b·I` only touches planes `c00` and `c11`. Activations, max pooling and softmax are elementwise on
//! ciphertexts: see [`Activation`] and each layer for which ones are ring-only.

use ndarray::{Array1, Array2, Array4, ArrayD, Axis, Ix2, Ix4, IxDyn};
use serde::{Deserialize, Serialize};

use more_core::MatrixFunction;

use crate::error::{Error, Result};
use crate::kernels::{self, Window};

/// An elementwise activation.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Activation {
    /// `x²` — **ring-only** (`C·C`): runs under any homomorphic scheme (CryptoNets).
    Square,
    /// `max(x, 0)` — spectral formula, **uses the 2x2 structure** (the eigen-decomposition).
    Relu,
    /// `1/(1 + e⁻ˣ)` — spectral formula, uses the 2x2 structure.
    Sigmoid,
    /// `tanh x` — spectral formula, uses the 2x2 structure.
    Tanh,
}

impl Activation {
    /// The matrix function that evaluates it on a ciphertext.
    pub fn function(self) -> MatrixFunction {
        match self {
            Self::Square => MatrixFunction::Square,
            Self::Relu => MatrixFunction::Relu,
            Self::Sigmoid => MatrixFunction::Sigmoid,
            Self::Tanh => MatrixFunction::Tanh,
        }
    }

    /// Whether it uses ring operations only.
    pub fn is_ring_only(self) -> bool {
        self.function().is_ring_only()
    }

    /// Its name (`"relu"`, ...).
    pub fn name(self) -> &'static str {
        self.function().name()
    }

    /// The function on a plain number.
    #[inline]
    pub fn eval(self, x: f32) -> f32 {
        match self {
            Self::Square => x * x,
            Self::Relu => x.max(0.0),
            Self::Sigmoid => 1.0 / (1.0 + (-x).exp()),
            Self::Tanh => x.tanh(),
        }
    }
}

/// A fully connected layer `y = x·W + b`.
#[derive(Debug, Clone, PartialEq)]
pub struct Dense {
    /// Weights `[inputs, outputs]`.
    pub weight: Array2<f32>,
    /// Bias `[outputs]`.
    pub bias: Array1<f32>,
}

/// A 2-D convolution over `[C, H, W]` inputs (cross-correlation, square stride and zero padding).
#[derive(Debug, Clone, PartialEq)]
pub struct Conv2d {
    /// Kernels `[out_channels, in_channels, kh, kw]`.
    pub weight: Array4<f32>,
    /// Bias `[out_channels]`.
    pub bias: Array1<f32>,
    /// Stride in both directions.
    pub stride: usize,
    /// Zero padding on every side.
    pub padding: usize,
}

impl Conv2d {
    /// The window geometry.
    pub fn window(&self) -> Window {
        let (_, _, kh, kw) = self.weight.dim();
        Window { kh, kw, stride: self.stride, padding: self.padding }
    }
}

/// A square pooling window without padding.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct Pool {
    /// Window side.
    pub size: usize,
    /// Stride.
    pub stride: usize,
}

/// One layer of a [`crate::Model`].
#[derive(Debug, Clone, PartialEq)]
#[non_exhaustive]
pub enum Layer {
    /// Fully connected (input must be 1-D per sample) — linear: ring-only.
    Dense(Dense),
    /// 2-D convolution (input `[C, H, W]`) — linear: ring-only.
    Conv2d(Conv2d),
    /// Average pooling — linear: ring-only.
    AvgPool(Pool),
    /// Max pooling — **uses the 2x2 structure**: `max(a, b) = (a + b + |a − b|)/2` with `|·|` evaluated by
    /// the spectral formula, folded over the window.
    MaxPool(Pool),
    /// Flattens `[C, H, W]` to `[C·H·W]` — no arithmetic.
    Flatten,
    /// An elementwise activation (see [`Activation`]).
    Activation(Activation),
    /// Softmax over the last axis — **uses the 2x2 structure** (`exp`); the normalisation uses a ciphertext
    /// inverse and product (ring operations).
    Softmax,
}

/// The serialisable description of a layer (its weights are stored separately, in this order: weight,
/// bias).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "type", rename_all = "snake_case")]
#[allow(missing_docs)]
pub enum LayerSpec {
    Dense { inputs: usize, outputs: usize },
    Conv2d { in_channels: usize, out_channels: usize, kernel: [usize; 2], stride: usize, padding: usize },
    AvgPool { size: usize, stride: usize },
    MaxPool { size: usize, stride: usize },
    Flatten,
    Activation { function: Activation },
    Softmax,
}

impl LayerSpec {
    /// Shapes of the parameter tensors this layer stores (weight, bias), possibly none.
    pub fn param_shapes(&self) -> Vec<Vec<usize>> {
        match *self {
            Self::Dense { inputs, outputs } => vec![vec![inputs, outputs], vec![outputs]],
            Self::Conv2d { in_channels, out_channels, kernel, .. } => {
                vec![vec![out_channels, in_channels, kernel[0], kernel[1]], vec![out_channels]]
            }
            _ => vec![],
        }
    }

    /// Builds the layer from its parameters (in [`Self::param_shapes`] order).
    pub fn build(&self, params: Vec<ArrayD<f32>>) -> Result<Layer> {
        let shapes = self.param_shapes();
        if params.len() != shapes.len() || params.iter().zip(&shapes).any(|(p, s)| p.shape() != s.as_slice()) {
            return Err(Error::InvalidModel(format!("parameters of {self:?} must have shapes {shapes:?}")));
        }
        let mut it = params.into_iter();
        let mut next = || it.next().expect("count checked");
        let bad = |_| Error::InvalidModel("parameter shape".into());
        Ok(match *self {
            Self::Dense { .. } => Layer::Dense(Dense {
                weight: next().into_dimensionality::<Ix2>().map_err(bad)?,
                bias: next().into_dimensionality().map_err(bad)?,
            }),
            Self::Conv2d { stride, padding, .. } => {
                if stride == 0 {
                    return Err(Error::InvalidModel("convolution stride 0".into()));
                }
                Layer::Conv2d(Conv2d {
                    weight: next().into_dimensionality::<Ix4>().map_err(bad)?,
                    bias: next().into_dimensionality().map_err(bad)?,
                    stride,
                    padding,
                })
            }
            Self::AvgPool { size, stride } => Layer::AvgPool(Pool { size, stride }),
            Self::MaxPool { size, stride } => Layer::MaxPool(Pool { size, stride }),
            Self::Flatten => Layer::Flatten,
            Self::Activation { function } => Layer::Activation(function),
            Self::Softmax => Layer::Softmax,
        })
    }
}

impl Layer {
    /// Its serialisable description.
    pub fn spec(&self) -> LayerSpec {
        match self {
            Self::Dense(d) => LayerSpec::Dense { inputs: d.weight.nrows(), outputs: d.weight.ncols() },
            Self::Conv2d(c) => {
                let (o, i, kh, kw) = c.weight.dim();
                LayerSpec::Conv2d {
                    in_channels: i,
                    out_channels: o,
                    kernel: [kh, kw],
                    stride: c.stride,
                    padding: c.padding,
                }
            }
            Self::AvgPool(p) => LayerSpec::AvgPool { size: p.size, stride: p.stride },
            Self::MaxPool(p) => LayerSpec::MaxPool { size: p.size, stride: p.stride },
            Self::Flatten => LayerSpec::Flatten,
            Self::Activation(a) => LayerSpec::Activation { function: *a },
            Self::Softmax => LayerSpec::Softmax,
        }
    }

    /// The parameter tensors (weight, bias), in file order.
    pub fn params(&self) -> Vec<ArrayD<f32>> {
        match self {
            Self::Dense(d) => vec![d.weight.clone().into_dyn(), d.bias.clone().into_dyn()],
            Self::Conv2d(c) => vec![c.weight.clone().into_dyn(), c.bias.clone().into_dyn()],
            _ => vec![],
        }
    }

    /// The operation's name (`"dense"`, `"conv2d"`, `"relu"`, ...).
    pub fn name(&self) -> &'static str {
        match self {
            Self::Dense(_) => "dense",
            Self::Conv2d(_) => "conv2d",
            Self::AvgPool(_) => "avgpool",
            Self::MaxPool(_) => "maxpool",
            Self::Flatten => "flatten",
            Self::Activation(a) => a.name(),
            Self::Softmax => "softmax",
        }
    }

    /// Whether it runs on ciphertexts with ring operations only.
    pub fn is_ring_only(&self) -> bool {
        match self {
            Self::Dense(_) | Self::Conv2d(_) | Self::AvgPool(_) | Self::Flatten => true,
            Self::Activation(a) => a.is_ring_only(),
            Self::MaxPool(_) | Self::Softmax => false,
        }
    }

    /// A one-line description (`"conv2d 1->16 5x5 stride 2 pad 2"`).
    pub fn describe(&self) -> String {
        match self.spec() {
            LayerSpec::Dense { inputs, outputs } => format!("dense {inputs}->{outputs}"),
            LayerSpec::Conv2d { in_channels, out_channels, kernel, stride, padding } => format!(
                "conv2d {in_channels}->{out_channels} {}x{} stride {stride} pad {padding}",
                kernel[0], kernel[1]
            ),
            LayerSpec::AvgPool { size, stride } => format!("avgpool {size}x{size} stride {stride}"),
            LayerSpec::MaxPool { size, stride } => format!("maxpool {size}x{size} stride {stride}"),
            _ => self.name().to_string(),
        }
    }

    /// The per-sample output shape for a per-sample input shape, or an error if the layer cannot take it.
    pub fn output_shape(&self, input: &[usize]) -> Result<Vec<usize>> {
        let op = self.name();
        match self {
            Self::Dense(d) => {
                if input != [d.weight.nrows()] {
                    return Err(Error::shape(op, format!("[{}]", d.weight.nrows()), input));
                }
                Ok(vec![d.weight.ncols()])
            }
            Self::Conv2d(c) => {
                let (o, i, _, _) = c.weight.dim();
                match *input {
                    [ci, h, w] if ci == i => match c.window().output_hw(h, w) {
                        Some((oh, ow)) => Ok(vec![o, oh, ow]),
                        None => Err(Error::shape(op, "an input at least as large as the kernel", input)),
                    },
                    _ => Err(Error::shape(op, format!("[{i}, H, W]"), input)),
                }
            }
            Self::AvgPool(p) | Self::MaxPool(p) => {
                let win = Window { kh: p.size, kw: p.size, stride: p.stride, padding: 0 };
                match *input {
                    [c, h, w] => match win.output_hw(h, w) {
                        Some((oh, ow)) => Ok(vec![c, oh, ow]),
                        None => Err(Error::shape(op, "an input at least as large as the window", input)),
                    },
                    _ => Err(Error::shape(op, "[C, H, W]", input)),
                }
            }
            Self::Flatten => Ok(vec![input.iter().product()]),
            Self::Activation(_) => Ok(input.to_vec()),
            Self::Softmax => {
                if input.len() != 1 {
                    return Err(Error::shape(op, "a 1-D input", input));
                }
                Ok(input.to_vec())
            }
        }
    }

    /// Runs the layer on a batch (plaintext rows or stacked ciphertext planes). The caller has checked the
    /// shape with [`Self::output_shape`].
    pub(crate) fn forward(&self, x: Batch) -> Result<Batch> {
        let planes = x.planes;
        let data = match self {
            Self::Dense(d) => {
                let rows = x.data.shape()[0];
                let x2 = x.data.into_dimensionality::<Ix2>().map_err(|_| Error::InvalidModel("dense input".into()))?;
                let mut y = x2.dot(&d.weight);
                for r in bias_ranges(rows, planes) {
                    let mut block = y.slice_axis_mut(Axis(0), r.into());
                    block += &d.bias;
                }
                y.into_dyn()
            }
            Self::Conv2d(c) => {
                let x4 = x.data.into_dimensionality::<Ix4>().map_err(|_| Error::InvalidModel("conv input".into()))?;
                let (b, _, h, w) = x4.dim();
                let win = c.window();
                let (oh, ow) = win.output_hw(h, w).ok_or(Error::InvalidModel("conv window".into()))?;
                let p = oh * ow;
                let cols = kernels::im2col_t(x4.view(), win); // [C·kh·kw, B·P]
                let o = c.weight.shape()[0];
                let wmat = c.weight.view().into_shape_with_order((o, c.weight.len() / o)).expect("standard layout");
                let mut y = wmat.dot(&cols); // [O, B·P]: one GEMM for the whole (stacked) batch
                let bias = c.bias.view().insert_axis(Axis(1));
                for r in bias_ranges(b * p, planes) {
                    let mut block = y.slice_axis_mut(Axis(1), r.into());
                    block += &bias;
                }
                let y = y.as_standard_layout().into_owned().into_shape_with_order((o, b, p)).expect("sizes match");
                y.permuted_axes([1, 0, 2])
                    .as_standard_layout()
                    .into_owned()
                    .into_shape_with_order(IxDyn(&[b, o, oh, ow]))
                    .expect("sizes match")
            }
            Self::AvgPool(p) => {
                let shape = dims4(&x.data)?;
                let idx = kernels::pool_indices(shape, p.size, p.stride);
                let src = x.data.as_standard_layout();
                let src = src.as_slice().expect("standard layout");
                let inv = 1.0 / (p.size * p.size) as f32;
                let n = idx[0].len();
                let mut out = vec![0.0f32; n];
                for list in &idx {
                    for (o, &i) in out.iter_mut().zip(list) {
                        *o += src[i];
                    }
                }
                out.iter_mut().for_each(|v| *v *= inv);
                pooled(out, shape, *p)
            }
            Self::MaxPool(p) => {
                let shape = dims4(&x.data)?;
                let idx = kernels::pool_indices(shape, p.size, p.stride);
                let src = x.data.as_standard_layout();
                let src = src.as_slice().expect("standard layout");
                let gather = |list: &Vec<usize>| list.iter().map(|&i| src[i]).collect::<Vec<f32>>();
                let mut acc = gather(&idx[0]);
                for list in &idx[1..] {
                    let next = gather(list);
                    if planes == 1 {
                        acc.iter_mut().zip(&next).for_each(|(a, &b)| *a = a.max(b));
                    } else {
                        spectral_max(&mut acc, &next)?;
                    }
                }
                pooled(acc, shape, *p)
            }
            Self::Flatten => {
                let rows = x.data.shape()[0];
                let n = x.data.len() / rows.max(1);
                let d = if x.data.is_standard_layout() { x.data } else { x.data.as_standard_layout().into_owned() };
                d.into_shape_with_order(IxDyn(&[rows, n])).expect("sizes match")
            }
            Self::Activation(a) => {
                let mut d = x.data;
                if planes == 1 {
                    d.mapv_inplace(|v| a.eval(v));
                } else {
                    let d2 = if d.is_standard_layout() { d } else { d.as_standard_layout().into_owned() };
                    d = d2;
                    let planes = d.as_slice_mut().expect("standard layout");
                    if *a == Activation::Relu {
                        relu_planes(planes)?;
                    } else {
                        spectral_inplace(planes, a.function())?;
                    }
                }
                d
            }
            Self::Softmax => {
                if planes == 1 {
                    let mut d =
                        x.data.into_dimensionality::<Ix2>().map_err(|_| Error::InvalidModel("softmax".into()))?;
                    for mut row in d.rows_mut() {
                        let m = row.fold(f32::NEG_INFINITY, |a, &b| a.max(b));
                        row.mapv_inplace(|v| (v - m).exp());
                        let s = row.sum();
                        row.mapv_inplace(|v| v / s);
                    }
                    d.into_dyn()
                } else {
                    encrypted_softmax(x.data)?
                }
            }
        };
        Ok(Batch { data, planes })
    }
}

/// A batch flowing through the inference pass: plaintext rows (`planes = 1`) or the four planes of an
/// encrypted batch stacked along axis 0 (`planes = 4`, rows `[c00 block; c01; c10; c11]`).
#[derive(Debug)]
pub(crate) struct Batch {
    pub(crate) data: ArrayD<f32>,
    pub(crate) planes: usize,
}

/// Row ranges that receive a plaintext bias `b·I`: all rows, or the `c00` and `c11` blocks.
fn bias_ranges(rows: usize, planes: usize) -> Vec<std::ops::Range<usize>> {
    if planes == 1 {
        std::iter::once(0..rows).collect()
    } else {
        let q = rows / 4;
        vec![0..q, 3 * q..rows]
    }
}

fn dims4(x: &ArrayD<f32>) -> Result<[usize; 4]> {
    match *x.shape() {
        [b, c, h, w] => Ok([b, c, h, w]),
        _ => Err(Error::shape("pool", "[N, C, H, W]", x.shape())),
    }
}

fn pooled(values: Vec<f32>, [b, c, h, w]: [usize; 4], p: Pool) -> ArrayD<f32> {
    let oh = (h - p.size) / p.stride + 1;
    let ow = (w - p.size) / p.stride + 1;
    ArrayD::from_shape_vec(IxDyn(&[b, c, oh, ow]), values).expect("sizes match")
}

/// Applies a matrix function in place to stacked planes `[c00 | c01 | c10 | c11]` (`data.len() = 4n`).
/// `Square` is the ring product `C·C`; every other function uses the 2x2 structure (spectral formula).
pub(crate) fn spectral_inplace(data: &mut [f32], f: MatrixFunction) -> Result<()> {
    let n = data.len() / 4;
    let (p0, rest) = data.split_at_mut(n);
    let (p1, rest) = rest.split_at_mut(n);
    let (p2, p3) = rest.split_at_mut(n);
    for i in 0..n {
        let (a, b, c, d) = (p0[i], p1[i], p2[i], p3[i]);
        if f == MatrixFunction::Square {
            p0[i] = a * a + b * c;
            p1[i] = a * b + b * d;
            p2[i] = c * a + d * c;
            p3[i] = c * b + d * d;
            continue;
        }
        let cf = [f64::from(a), f64::from(b), f64::from(c), f64::from(d)];
        let (alpha, beta) = more_core::spectral::coefficients(f, cf, i)?;
        p0[i] = (alpha + beta * cf[0]) as f32;
        p1[i] = (beta * cf[1]) as f32;
        p2[i] = (beta * cf[2]) as f32;
        p3[i] = (alpha + beta * cf[3]) as f32;
    }
    Ok(())
}

/// ReLU on stacked planes by the spectral formula (uses the 2x2 structure), specialised and branch-free so
/// it vectorises: with eigenvalues `c ± δ`, `relu(C) = C` if both are ≥ 0, `0` if both are ≤ 0, else
/// `α·I + β·C` with `α = (c + δ)(δ − c)/(2δ)`, `β = (1 + c/δ)/2` — the coefficients of
/// `more_core::spectral::coefficients(Relu, ..)`, here in `f32` (the planes' precision; the eval command
/// measures the end-to-end logit error).
pub(crate) fn relu_planes(data: &mut [f32]) -> Result<()> {
    let n = data.len() / 4;
    let (p0, rest) = data.split_at_mut(n);
    let (p1, rest) = rest.split_at_mut(n);
    let (p2, p3) = rest.split_at_mut(n);
    let mut bad = 0u32;
    for (((x0, x1), x2), x3) in p0.iter_mut().zip(p1.iter_mut()).zip(p2.iter_mut()).zip(p3.iter_mut()) {
        let (a, b, c, d) = (*x0, *x1, *x2, *x3);
        let mid = 0.5 * (a + d);
        let half = 0.5 * (a - d);
        let disc = half * half + b * c;
        let scale = a.abs() + b.abs() + c.abs() + d.abs();
        bad |= u32::from(disc < -1e-4 * scale * scale);
        let delta = disc.max(0.0).sqrt();
        let (hi, lo) = (mid + delta, mid - delta);
        let inv = 1.0 / delta.max(f32::MIN_POSITIVE);
        let mixed = lo < 0.0 && hi > 0.0;
        let alpha = if mixed { 0.5 * hi * -lo * inv } else { 0.0 };
        let beta = if mixed {
            0.5 + 0.5 * mid * inv
        } else if lo >= 0.0 {
            1.0
        } else {
            0.0
        };
        *x0 = alpha + beta * a;
        *x1 = beta * b;
        *x2 = beta * c;
        *x3 = alpha + beta * d;
    }
    if bad != 0 {
        return Err(Error::NotACiphertext("relu"));
    }
    Ok(())
}

/// `acc ← max(acc, next) = (acc + next + |acc − next|)/2` on stacked planes; `|·|` by the spectral formula
/// (uses the 2x2 structure).
fn spectral_max(acc: &mut [f32], next: &[f32]) -> Result<()> {
    let mut diff: Vec<f32> = acc.iter().zip(next).map(|(a, b)| a - b).collect();
    spectral_inplace(&mut diff, MatrixFunction::Abs)?;
    for ((a, &b), &d) in acc.iter_mut().zip(next).zip(&diff) {
        *a = 0.5 * (*a + b + d);
    }
    Ok(())
}

/// Softmax over the last axis of stacked planes `[4N, K]`: `exp` (2x2 structure), a row sum (ring), its
/// ciphertext inverse and a ciphertext product (ring).
fn encrypted_softmax(data: ArrayD<f32>) -> Result<ArrayD<f32>> {
    let rows = data.shape()[0] / 4;
    let k = data.shape()[1];
    let t = more_core::EncryptedTensor::from_data(
        data.into_shape_with_order(IxDyn(&[4, rows, k])).map_err(|_| Error::NonFinite("softmax"))?,
    )?;
    let e = t.apply(MatrixFunction::Exp)?;
    let sums = e.data().sum_axis(Axis(2)); // [4, rows]
    let inv = more_core::EncryptedTensor::from_data(sums)?.inverse()?;
    let inv_b = inv.data().clone().insert_axis(Axis(2));
    let inv_full = inv_b.broadcast(IxDyn(&[4, rows, k])).expect("broadcast").to_owned();
    let p = e.mul(&more_core::EncryptedTensor::from_data(inv_full)?)?;
    Ok(p.into_data().into_shape_with_order(IxDyn(&[4 * rows, k])).expect("sizes match"))
}
