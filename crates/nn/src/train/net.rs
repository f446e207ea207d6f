//! [`Net`]: a trainable network generic over the tensor [`Algebra`], with forward and backward passes.

use ndarray::{ArrayD, IxDyn};
use rand::Rng;
use rand_chacha::ChaCha8Rng;

use crate::algebra::{Algebra, Lanewise, Reveal};
use crate::error::{Error, Result};
use crate::kernels::{self, Window};
use crate::layer::{Activation, Layer, LayerSpec, Pool};
use crate::model::{Model, ModelMeta};

/// One layer with its parameters as tensors of the algebra.
#[derive(Debug, Clone)]
enum Unit<A: Algebra> {
    /// `w: [inputs, outputs]`, `b: [outputs]`.
    Dense {
        w: A::Tensor,
        b: A::Tensor,
    },
    /// `w: [O, C·kh·kw]`, `b: [O]`.
    Conv {
        w: A::Tensor,
        b: A::Tensor,
        win: Window,
    },
    AvgPool(Pool),
    MaxPool(Pool),
    Flatten,
    Act(Activation),
    Softmax,
}

/// What a layer keeps from the forward pass for the backward pass.
#[derive(Debug)]
enum Saved<T> {
    /// The layer input (dense, activations).
    Input(T),
    /// Convolution: im2col of the input and the input shape.
    Cols(T, Vec<usize>),
    /// Pooling: the input shape.
    Shape(Vec<usize>),
    /// Max pooling: input shape and, per fold step, `step(acc − next)`.
    Masks(Vec<usize>, Vec<T>),
    /// Sigmoid/tanh/softmax: the output.
    Output(T),
}

/// The forward-pass record needed by [`Net::backward`].
#[derive(Debug)]
pub struct Tape<T> {
    saved: Vec<Saved<T>>,
}

/// A trainable network: layer specs, parameters in the algebra `A`, and the input shape.
#[derive(Debug, Clone)]
pub struct Net<A: Algebra> {
    units: Vec<Unit<A>>,
    specs: Vec<LayerSpec>,
    input_shape: Vec<usize>,
}

/// Permutation indices from `[N·P, O]` (GEMM output) to `[N, O, P]` (channels first) and back.
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

fn pool_index(shape: &[usize], p: Pool) -> Result<(Vec<usize>, Vec<usize>, usize)> {
    let &[n, c, h, w] = shape else {
        return Err(Error::shape("pool", "[N, C, H, W]", shape));
    };
    let win = Window { kh: p.size, kw: p.size, stride: p.stride, padding: 0 };
    let (oh, ow) = win.output_hw(h, w).ok_or_else(|| Error::shape("pool", "an input larger than the window", shape))?;
    let lists = kernels::pool_indices([n, c, h, w], p.size, p.stride);
    let m = lists[0].len();
    Ok((lists.concat(), vec![n, c, oh, ow], m))
}

impl<A: Algebra> Net<A> {
    /// A network with freshly initialised parameters (He-uniform weights, zero biases), drawn from `rng`.
    pub fn new(alg: &A, input_shape: &[usize], specs: &[LayerSpec], rng: &mut ChaCha8Rng) -> Result<Self> {
        let mut params = Vec::new();
        for spec in specs {
            let mut ps = Vec::new();
            for shape in spec.param_shapes() {
                let arr = if shape.len() == 1 {
                    ArrayD::zeros(IxDyn(&shape))
                } else {
                    let fan_in = match spec {
                        LayerSpec::Dense { inputs, .. } => *inputs,
                        _ => shape[1..].iter().product(),
                    };
                    let limit = (6.0 / fan_in as f32).sqrt();
                    ArrayD::from_shape_simple_fn(IxDyn(&shape), || rng.random_range(-limit..limit))
                };
                ps.push(arr);
            }
            params.push(ps);
        }
        Self::from_params(alg, input_shape, specs, params)
    }

    /// A network with the given parameters per layer (in [`LayerSpec::param_shapes`] order).
    pub fn from_params(
        alg: &A,
        input_shape: &[usize],
        specs: &[LayerSpec],
        params: Vec<Vec<ArrayD<f32>>>,
    ) -> Result<Self> {
        // Validate the chain with the inference layers (same shape rules).
        let layers =
            specs.iter().zip(params.iter()).map(|(s, p)| s.build(p.clone())).collect::<Result<Vec<Layer>>>()?;
        if layers.len() != specs.len() {
            return Err(Error::InvalidModel("one parameter list per layer".into()));
        }
        Model::new(ModelMeta::new("check", "check"), input_shape, layers)?;
        let mut units = Vec::new();
        for (spec, ps) in specs.iter().zip(params) {
            let mut it = ps.into_iter();
            let mut next = |shape: Option<Vec<usize>>| -> Result<A::Tensor> {
                let a = it.next().expect("count checked by build");
                let a = match shape {
                    Some(s) => a.into_shape_with_order(IxDyn(&s)).expect("same count"),
                    None => a,
                };
                alg.parameter(a)
            };
            units.push(match *spec {
                LayerSpec::Dense { .. } => Unit::Dense { w: next(None)?, b: next(None)? },
                LayerSpec::Conv2d { in_channels, out_channels, kernel, stride, padding } => Unit::Conv {
                    w: next(Some(vec![out_channels, in_channels * kernel[0] * kernel[1]]))?,
                    b: next(None)?,
                    win: Window { kh: kernel[0], kw: kernel[1], stride, padding },
                },
                LayerSpec::AvgPool { size, stride } => Unit::AvgPool(Pool { size, stride }),
                LayerSpec::MaxPool { size, stride } => Unit::MaxPool(Pool { size, stride }),
                LayerSpec::Flatten => Unit::Flatten,
                LayerSpec::Activation { function } => Unit::Act(function),
                LayerSpec::Softmax => Unit::Softmax,
            });
        }
        Ok(Net { units, specs: specs.to_vec(), input_shape: input_shape.to_vec() })
    }

    /// A network with a model's weights (as parameters of the algebra).
    pub fn from_model(alg: &A, model: &Model) -> Result<Self> {
        let specs: Vec<LayerSpec> = model.layers().iter().map(Layer::spec).collect();
        let params = model.layers().iter().map(Layer::params).collect();
        Self::from_params(alg, model.input_shape(), &specs, params)
    }

    /// The layer specs.
    pub fn specs(&self) -> &[LayerSpec] {
        &self.specs
    }

    /// Input shape without the batch axis.
    pub fn input_shape(&self) -> &[usize] {
        &self.input_shape
    }

    /// All parameters in order (per layer: weight, bias). Convolution weights are `[O, C·kh·kw]`.
    pub fn params(&self) -> Vec<&A::Tensor> {
        let mut out = Vec::new();
        for u in &self.units {
            match u {
                Unit::Dense { w, b } | Unit::Conv { w, b, .. } => {
                    out.push(w);
                    out.push(b);
                }
                _ => {}
            }
        }
        out
    }

    /// Mutable access to all parameters, in [`Self::params`] order.
    pub fn params_mut(&mut self) -> Vec<&mut A::Tensor> {
        let mut out = Vec::new();
        for u in &mut self.units {
            match u {
                Unit::Dense { w, b } | Unit::Conv { w, b, .. } => {
                    out.push(w);
                    out.push(b);
                }
                _ => {}
            }
        }
        out
    }

    /// Reveals the parameters (key owner) and builds an inference [`Model`].
    pub fn to_model<R: Reveal<A> + ?Sized>(&self, reveal: &R, meta: ModelMeta) -> Result<Model> {
        let mut params = self.params().into_iter();
        let mut layers = Vec::new();
        for spec in &self.specs {
            let mut ps = Vec::new();
            for shape in spec.param_shapes() {
                let t = reveal.reveal(params.next().expect("one tensor per parameter"))?;
                ps.push(
                    t.into_shape_with_order(IxDyn(&shape)).map_err(|_| Error::InvalidModel("parameter size".into()))?,
                );
            }
            layers.push(spec.build(ps)?);
        }
        Model::new(meta, &self.input_shape, layers)
    }

    /// Forward pass on a batch `[N, ...input_shape]`, recording what backward needs.
    pub fn forward(&self, alg: &A, x: &A::Tensor) -> Result<(A::Tensor, Tape<A::Tensor>)> {
        let s = alg.shape(x);
        if s.len() != self.input_shape.len() + 1 || s[1..] != self.input_shape[..] {
            return Err(Error::shape("net input", format!("[N, {:?}]", self.input_shape), &s));
        }
        let mut saved = Vec::with_capacity(self.units.len());
        let mut x = x.clone();
        for u in &self.units {
            let (y, keep) = forward_unit(alg, u, &x)?;
            saved.push(keep);
            x = y;
        }
        Ok((x, Tape { saved }))
    }

    /// Forward pass without recording (inference in the algebra).
    pub fn predict(&self, alg: &A, x: &A::Tensor) -> Result<A::Tensor> {
        Ok(self.forward(alg, x)?.0)
    }

    /// Backward pass: from `∂L/∂output`, the gradients of every parameter in [`Self::params`] order.
    pub fn backward(&self, alg: &A, tape: Tape<A::Tensor>, grad: A::Tensor) -> Result<Vec<A::Tensor>> {
        let mut grads: Vec<Vec<A::Tensor>> = Vec::with_capacity(self.units.len());
        let mut g = grad;
        for (u, saved) in self.units.iter().zip(tape.saved).rev() {
            let (gx, pg) = backward_unit(alg, u, saved, g)?;
            grads.push(pg);
            g = gx;
        }
        Ok(grads.into_iter().rev().flatten().collect())
    }
}

fn forward_unit<A: Algebra>(alg: &A, u: &Unit<A>, x: &A::Tensor) -> Result<(A::Tensor, Saved<A::Tensor>)> {
    Ok(match u {
        Unit::Dense { w, b } => {
            let y = alg.add_row(&alg.matmul(x, false, w, false)?, b)?;
            (y, Saved::Input(x.clone()))
        }
        Unit::Conv { w, b, win, .. } => {
            let s = alg.shape(x);
            let (n, h, wd) = (s[0], s[2], s[3]);
            let (oh, ow) =
                win.output_hw(h, wd).ok_or_else(|| Error::shape("conv2d", "an input larger than the kernel", &s))?;
            let o = alg.shape(w)[0];
            let cols = alg.im2col(x, *win)?;
            let y2 = alg.add_row(&alg.matmul(&cols, false, w, true)?, b)?; // [N·P, O]
            let y = alg.gather(&y2, &nchw_indices(n, o, oh * ow), &[n, o, oh, ow])?;
            (y, Saved::Cols(cols, s))
        }
        Unit::AvgPool(p) => {
            let s = alg.shape(x);
            let (idx, out, m) = pool_index(&s, *p)?;
            let k2 = p.size * p.size;
            let g = alg.gather(x, &idx, &[k2, m])?;
            let y = alg.scale(&alg.sum_rows(&g)?, 1.0 / k2 as f32)?;
            (alg.reshape(&y, &out)?, Saved::Shape(s))
        }
        Unit::MaxPool(p) => {
            let s = alg.shape(x);
            let (idx, out, m) = pool_index(&s, *p)?;
            let k2 = p.size * p.size;
            let mut acc = alg.gather(x, &idx[..m], &[m])?;
            let mut masks = Vec::with_capacity(k2 - 1);
            for j in 1..k2 {
                let next = alg.gather(x, &idx[j * m..(j + 1) * m], &[m])?;
                let d = alg.sub(&acc, &next)?;
                // max(a, b) = (a + b + |a − b|)/2 — |·| uses the 2x2 structure.
                let abs = alg.map(&d, Lanewise::Abs)?;
                masks.push(alg.map(&d, Lanewise::Step)?);
                acc = alg.scale(&alg.add(&alg.add(&acc, &next)?, &abs)?, 0.5)?;
            }
            (alg.reshape(&acc, &out)?, Saved::Masks(s, masks))
        }
        Unit::Flatten => {
            let s = alg.shape(x);
            let y = alg.reshape(x, &[s[0], s[1..].iter().product()])?;
            (y, Saved::Shape(s))
        }
        Unit::Act(a) => match a {
            Activation::Square => (alg.map(x, Lanewise::Square)?, Saved::Input(x.clone())),
            Activation::Relu => (alg.map(x, Lanewise::Relu)?, Saved::Input(x.clone())),
            Activation::Sigmoid => {
                let y = alg.map(x, Lanewise::Sigmoid)?;
                (y.clone(), Saved::Output(y))
            }
            Activation::Tanh => {
                let y = alg.map(x, Lanewise::Tanh)?;
                (y.clone(), Saved::Output(y))
            }
        },
        Unit::Softmax => {
            let y = alg.softmax_rows(x)?;
            (y.clone(), Saved::Output(y))
        }
    })
}

fn backward_unit<A: Algebra>(
    alg: &A,
    u: &Unit<A>,
    saved: Saved<A::Tensor>,
    g: A::Tensor,
) -> Result<(A::Tensor, Vec<A::Tensor>)> {
    let wrong = || Error::InvalidModel("tape does not match the network".into());
    Ok(match (u, saved) {
        (Unit::Dense { w, .. }, Saved::Input(x)) => {
            let dw = alg.matmul(&x, true, &g, false)?;
            let db = alg.sum_rows(&g)?;
            (alg.matmul(&g, false, w, true)?, vec![dw, db])
        }
        (Unit::Conv { w, win, .. }, Saved::Cols(cols, s)) => {
            let gs = alg.shape(&g);
            let (n, o, p) = (gs[0], gs[1], gs[2] * gs[3]);
            let g2 = alg.gather(&g, &nhwc_indices(n, o, p), &[n * p, o])?;
            let dw = alg.matmul(&g2, true, &cols, false)?;
            let db = alg.sum_rows(&g2)?;
            let dcols = alg.matmul(&g2, false, w, false)?;
            (alg.col2im(&dcols, &s, *win)?, vec![dw, db])
        }
        (Unit::AvgPool(p), Saved::Shape(s)) => {
            let (idx, _, m) = pool_index(&s, *p)?;
            let k2 = p.size * p.size;
            let g1 = alg.reshape(&g, &[1, m])?;
            let ones = alg.public(ArrayD::from_elem(IxDyn(&[k2, 1]), 1.0 / k2 as f32))?;
            let spread = alg.matmul(&ones, false, &g1, false)?;
            (alg.scatter_add(&spread, &idx, &s)?, vec![])
        }
        (Unit::MaxPool(p), Saved::Masks(s, masks)) => {
            let (idx, _, m) = pool_index(&s, *p)?;
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
            (
                match dx {
                    None => part,
                    Some(d) => alg.add(&d, &part)?,
                },
                vec![],
            )
        }
        (Unit::Flatten, Saved::Shape(s)) => (alg.reshape(&g, &s)?, vec![]),
        (Unit::Act(Activation::Square), Saved::Input(x)) => (alg.scale(&alg.mul(&g, &x)?, 2.0)?, vec![]),
        (Unit::Act(Activation::Relu), Saved::Input(x)) => (alg.mul(&g, &alg.map(&x, Lanewise::Step)?)?, vec![]),
        (Unit::Act(Activation::Sigmoid), Saved::Output(y)) => {
            let d = alg.sub(&y, &alg.mul(&y, &y)?)?; // s(1 − s): ring-only
            (alg.mul(&g, &d)?, vec![])
        }
        (Unit::Act(Activation::Tanh), Saved::Output(y)) => {
            let d = alg.shift(&alg.scale(&alg.mul(&y, &y)?, -1.0)?, 1.0)?; // 1 − t²: ring-only
            (alg.mul(&g, &d)?, vec![])
        }
        (Unit::Softmax, Saved::Output(y)) => {
            // dx = y ⊙ (g − Σ_j g_j y_j)
            let dot = alg.row_sums(&alg.mul(&g, &y)?)?;
            let ones_shape = alg.shape(&y);
            let ones = alg.public(ArrayD::ones(IxDyn(&ones_shape)))?;
            let centred = alg.sub(&g, &alg.mul_col(&ones, &dot)?)?;
            (alg.mul(&y, &centred)?, vec![])
        }
        _ => return Err(wrong()),
    })
}
