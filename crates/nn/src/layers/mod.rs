//! Layers: one file per layer family, one trait ([`LayerKind`]) that gives a layer everything it needs,
//! and one enum ([`LayerSpec`]) that registers the families and dispatches to them.
//!
//! A layer family (say [`dense::Dense`]) is a small struct holding its hyper-parameters. Implementing
//! [`LayerKind`] for it gives the layer, in one place:
//!
//! - its description: name, one-line description, whether it is ring-only on ciphertexts, the shapes of
//!   its parameters and of its output;
//! - its inference forward pass ([`LayerKind::infer`]) on a [`Batch`]: plaintext rows, or the four planes of
//!   an encrypted batch stacked as one batch four times as large — a layer with plaintext weights is linear
//!   on each plane, so dense, convolution and pooling layers run the same GEMM/convolution code on both;
//! - its training forward and backward passes ([`LayerKind::forward`], [`LayerKind::backward`]), written
//!   once against the tensor [`Algebra`] (plaintext [`crate::Plain`] or ciphertexts in `more-enctrain`).
//!
//! [`LayerSpec`] is the serialisable description stored in model files (its JSON names never change);
//! `with_kind!` in this file maps each of its variants to the family struct. [`Layer`] is a spec with its
//! plaintext parameters; a training network (`crate::train::Net`) holds a spec with parameters in the
//! algebra. Adding a layer: see `docs/architecture.md` ("Add a layer").

pub mod activation;
pub mod conv;
pub mod dense;
pub mod flatten;
pub mod global_pool;
pub mod planes;
pub mod pool;
pub mod softmax;

use ndarray::{ArrayD, ArrayView, Dimension, IxDyn};
use rand::Rng;
use rand_chacha::ChaCha8Rng;
use serde::{Deserialize, Serialize};

use more_core::ElementFunction;

use crate::algebra::Algebra;
use crate::error::{Error, Result};

/// What every layer family provides. Implemented by the structs of the files in this module; dispatched
/// from [`LayerSpec`].
pub trait LayerKind {
    /// The operation's name (`"dense"`, `"conv2d"`, `"relu"`, ...), as listed in a model's metadata.
    fn name(&self) -> &'static str;

    /// A one-line description (`"conv2d 1->16 5x5 stride 2 pad 2"`). Default: the name.
    fn describe(&self) -> String {
        self.name().to_string()
    }

    /// Whether it runs on ciphertexts with ring operations only (`false`: it uses the 2x2 structure).
    fn is_ring_only(&self) -> bool;

    /// Checks the hyper-parameters (e.g. a stride of 0). Default: nothing to check.
    fn validate(&self) -> Result<()> {
        Ok(())
    }

    /// Shapes of the parameter tensors, in file order (weight, then bias). Default: none.
    fn param_shapes(&self) -> Vec<Vec<usize>> {
        Vec::new()
    }

    /// Shapes the parameters take in a training network (default: [`Self::param_shapes`]); a convolution
    /// keeps its kernels flattened to `[out, in·kh·kw]`.
    fn training_shapes(&self) -> Vec<Vec<usize>> {
        self.param_shapes()
    }

    /// Fresh parameters for training, in [`Self::param_shapes`] order. Default: none.
    fn init(&self, _rng: &mut ChaCha8Rng) -> Vec<ArrayD<f32>> {
        Vec::new()
    }

    /// The per-sample output shape for a per-sample input shape, or an error if it cannot take it.
    fn output_shape(&self, input: &[usize]) -> Result<Vec<usize>>;

    /// Multiply-adds per sample, given the per-sample output shape. Default: 0.
    fn multiply_adds(&self, _output: &[usize]) -> usize {
        0
    }

    /// Elements (`f32`, index tables counting two) that [`Self::infer`] holds at once per sample and plane
    /// row — its input, scratch and output — given the per-sample input and output shapes: what the
    /// server's memory budget reserves for a forward pass. Default: `3 × (input + output)`, generous for a
    /// layer that states nothing better.
    fn live_elements(&self, input: &[usize], output: &[usize]) -> usize {
        3 * (input.iter().product::<usize>() + output.iter().product::<usize>())
    }

    /// Inference on a batch (plaintext rows or stacked ciphertext planes) with the parameters in
    /// [`Self::param_shapes`] order. The caller has checked the shape with [`Self::output_shape`].
    fn infer(&self, params: &[ArrayD<f32>], x: Batch) -> Result<Batch>;

    /// Training forward pass on `x: [N, ...]` with the parameters in [`Self::training_shapes`]: the
    /// output and what [`Self::backward`] needs.
    fn forward<A: Algebra>(
        &self,
        alg: &A,
        params: &[A::Tensor],
        x: &A::Tensor,
    ) -> Result<(A::Tensor, Saved<A::Tensor>)>;

    /// Backward pass: from `∂L/∂output` and what [`Self::forward`] saved, `∂L/∂input` and the gradients
    /// of the parameters (same order and shapes as `params`).
    fn backward<A: Algebra>(
        &self,
        alg: &A,
        params: &[A::Tensor],
        saved: Saved<A::Tensor>,
        grad: A::Tensor,
    ) -> Result<(A::Tensor, Vec<A::Tensor>)>;
}

/// The serialisable description of a layer, as stored in model files (its parameters are stored
/// separately, in [`LayerSpec::param_shapes`] order). Each variant is one layer family, implemented in
/// the file of the same name.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "type", rename_all = "snake_case")]
#[allow(missing_docs)]
pub enum LayerSpec {
    /// [`dense::Dense`].
    Dense { inputs: usize, outputs: usize },
    /// [`conv::Conv2d`].
    Conv2d { in_channels: usize, out_channels: usize, kernel: [usize; 2], stride: usize, padding: usize },
    /// [`pool::AvgPool`].
    AvgPool { size: usize, stride: usize },
    /// [`pool::MaxPool`].
    MaxPool { size: usize, stride: usize },
    /// [`global_pool::GlobalAvgPool`].
    GlobalAvgPool,
    /// [`flatten::Flatten`].
    Flatten,
    /// [`activation::Elementwise`].
    Activation { function: ElementFunction },
    /// [`softmax::Softmax`].
    Softmax,
}

/// Evaluates `$body` with `$k` bound to the [`LayerKind`] of the spec `$spec`: the one place that maps
/// [`LayerSpec`] variants to layer families.
macro_rules! with_kind {
    ($spec:expr, $k:ident => $body:expr) => {
        match *$spec {
            LayerSpec::Dense { inputs, outputs } => {
                let $k = dense::Dense { inputs, outputs };
                $body
            }
            LayerSpec::Conv2d { in_channels, out_channels, kernel, stride, padding } => {
                let $k = conv::Conv2d { in_channels, out_channels, kernel, stride, padding };
                $body
            }
            LayerSpec::AvgPool { size, stride } => {
                let $k = pool::AvgPool { size, stride };
                $body
            }
            LayerSpec::MaxPool { size, stride } => {
                let $k = pool::MaxPool { size, stride };
                $body
            }
            LayerSpec::GlobalAvgPool => {
                let $k = global_pool::GlobalAvgPool;
                $body
            }
            LayerSpec::Flatten => {
                let $k = flatten::Flatten;
                $body
            }
            LayerSpec::Activation { function } => {
                let $k = activation::Elementwise { function };
                $body
            }
            LayerSpec::Softmax => {
                let $k = softmax::Softmax;
                $body
            }
        }
    };
}

impl LayerSpec {
    /// Shapes of the parameter tensors this layer stores (weight, bias), possibly none.
    pub fn param_shapes(&self) -> Vec<Vec<usize>> {
        with_kind!(self, k => k.param_shapes())
    }

    /// Builds the layer from its parameters (in [`Self::param_shapes`] order).
    pub fn build(&self, params: Vec<ArrayD<f32>>) -> Result<Layer> {
        Layer::new(self.clone(), params)
    }

    /// The operation's name (`"dense"`, `"conv2d"`, `"relu"`, ...).
    pub fn name(&self) -> &'static str {
        with_kind!(self, k => k.name())
    }

    /// Whether it runs on ciphertexts with ring operations only.
    pub fn is_ring_only(&self) -> bool {
        with_kind!(self, k => k.is_ring_only())
    }

    /// A one-line description (`"conv2d 1->16 5x5 stride 2 pad 2"`).
    pub fn describe(&self) -> String {
        with_kind!(self, k => k.describe())
    }

    /// The per-sample output shape for a per-sample input shape, or an error if the layer cannot take it.
    pub fn output_shape(&self, input: &[usize]) -> Result<Vec<usize>> {
        with_kind!(self, k => k.output_shape(input))
    }

    /// Checks the hyper-parameters.
    pub fn validate(&self) -> Result<()> {
        with_kind!(self, k => k.validate())
    }

    /// Elements the inference pass holds at once per sample and plane row ([`LayerKind::live_elements`]).
    pub fn live_elements(&self, input: &[usize], output: &[usize]) -> usize {
        with_kind!(self, k => k.live_elements(input, output))
    }

    pub(crate) fn training_shapes(&self) -> Vec<Vec<usize>> {
        with_kind!(self, k => k.training_shapes())
    }

    pub(crate) fn init(&self, rng: &mut ChaCha8Rng) -> Vec<ArrayD<f32>> {
        with_kind!(self, k => k.init(rng))
    }

    pub(crate) fn multiply_adds(&self, output: &[usize]) -> usize {
        with_kind!(self, k => k.multiply_adds(output))
    }

    pub(crate) fn infer(&self, params: &[ArrayD<f32>], x: Batch) -> Result<Batch> {
        with_kind!(self, k => k.infer(params, x))
    }

    pub(crate) fn forward<A: Algebra>(
        &self,
        alg: &A,
        params: &[A::Tensor],
        x: &A::Tensor,
    ) -> Result<(A::Tensor, Saved<A::Tensor>)> {
        with_kind!(self, k => k.forward(alg, params, x))
    }

    pub(crate) fn backward<A: Algebra>(
        &self,
        alg: &A,
        params: &[A::Tensor],
        saved: Saved<A::Tensor>,
        grad: A::Tensor,
    ) -> Result<(A::Tensor, Vec<A::Tensor>)> {
        with_kind!(self, k => k.backward(alg, params, saved, grad))
    }
}

/// One layer of a [`crate::Model`]: its spec and its plaintext parameters.
#[derive(Debug, Clone, PartialEq)]
pub struct Layer {
    spec: LayerSpec,
    params: Vec<ArrayD<f32>>,
}

impl Layer {
    /// A layer from its spec and parameters (in [`LayerSpec::param_shapes`] order), checking both.
    pub fn new(spec: LayerSpec, params: Vec<ArrayD<f32>>) -> Result<Layer> {
        spec.validate()?;
        let shapes = spec.param_shapes();
        if params.len() != shapes.len() || params.iter().zip(&shapes).any(|(p, s)| p.shape() != s.as_slice()) {
            return Err(Error::InvalidModel(format!("parameters of {spec:?} must have shapes {shapes:?}")));
        }
        let params = params
            .into_iter()
            .map(|p| if p.is_standard_layout() { p } else { p.as_standard_layout().into_owned() })
            .collect();
        Ok(Layer { spec, params })
    }

    /// A parameter-free layer (activation, pooling, flatten, softmax).
    pub fn parameter_free(spec: LayerSpec) -> Result<Layer> {
        Layer::new(spec, Vec::new())
    }

    /// Its serialisable description.
    pub fn spec(&self) -> LayerSpec {
        self.spec.clone()
    }

    /// The parameter tensors (weight, bias), in file order.
    pub fn params(&self) -> Vec<ArrayD<f32>> {
        self.params.clone()
    }

    /// The parameter tensors, borrowed.
    pub fn weights(&self) -> &[ArrayD<f32>] {
        &self.params
    }

    /// The operation's name (`"dense"`, `"conv2d"`, `"relu"`, ...).
    pub fn name(&self) -> &'static str {
        self.spec.name()
    }

    /// Whether it runs on ciphertexts with ring operations only.
    pub fn is_ring_only(&self) -> bool {
        self.spec.is_ring_only()
    }

    /// A one-line description (`"conv2d 1->16 5x5 stride 2 pad 2"`).
    pub fn describe(&self) -> String {
        self.spec.describe()
    }

    /// The per-sample output shape for a per-sample input shape, or an error if the layer cannot take it.
    pub fn output_shape(&self, input: &[usize]) -> Result<Vec<usize>> {
        self.spec.output_shape(input)
    }

    /// Runs the layer on a batch (the caller has checked the shape with [`Self::output_shape`]).
    pub(crate) fn infer(&self, x: Batch) -> Result<Batch> {
        self.spec.infer(&self.params, x)
    }
}

/// A batch flowing through the inference pass: plaintext rows (`planes = 1`), an encrypted batch in
/// coefficient form (`planes = 2`, rows `[α block; β block]`, see [`crate::coefficient`]), or the four
/// planes of an encrypted batch stacked along axis 0 (`planes = 4`, rows `[c00 block; c01; c10; c11]`).
#[derive(Debug)]
pub struct Batch {
    /// `[rows, ...per-sample shape]`.
    pub data: ArrayD<f32>,
    /// 1 for plaintext, 2 for coefficient form, 4 for stacked ciphertext planes.
    pub planes: usize,
}

impl Batch {
    /// Whether the rows are encrypted (coefficient form or stacked planes).
    pub fn is_encrypted(&self) -> bool {
        self.planes != 1
    }

    /// Whether the rows are the coefficient form `[α; β]` (`C = α·I + β·J`, `J² = I`).
    pub fn is_coefficients(&self) -> bool {
        self.planes == 2
    }

    /// Ranges of `n` (rows or columns, in plane-major order) that receive a plaintext bias `b·I`: all of
    /// them for plaintext, the `α` block in coefficient form, the `c00` and `c11` blocks for stacked planes.
    pub fn bias_ranges(&self, n: usize) -> Vec<std::ops::Range<usize>> {
        match self.planes {
            1 => std::iter::once(0..n).collect(),
            2 => std::iter::once(0..n / 2).collect(),
            _ => {
                let q = n / 4;
                vec![0..q, 3 * q..n]
            }
        }
    }

    /// The same batch with new data.
    pub fn with(&self, data: ArrayD<f32>) -> Batch {
        Batch { data, planes: self.planes }
    }
}

/// What a layer keeps from its training forward pass for its backward pass: tensors and a shape.
#[derive(Debug)]
pub struct Saved<T> {
    /// Tensors (the input, the output, masks, ...), as the layer chooses.
    pub tensors: Vec<T>,
    /// A shape (usually the input shape), empty if unused.
    pub shape: Vec<usize>,
}

impl<T> Saved<T> {
    /// Keeps tensors.
    pub fn keep(tensors: Vec<T>) -> Self {
        Saved { tensors, shape: Vec::new() }
    }

    /// Keeps a shape.
    pub fn keep_shape(shape: Vec<usize>) -> Self {
        Saved { tensors: Vec::new(), shape }
    }

    /// The single saved tensor, or an error if the tape does not match the layer.
    pub fn one(mut self) -> Result<T> {
        match self.tensors.len() {
            1 => Ok(self.tensors.pop().expect("one tensor")),
            _ => Err(mismatch()),
        }
    }
}

/// The error for a tape or parameter list that does not belong to the layer.
pub(crate) fn mismatch() -> Error {
    Error::InvalidModel("tape or parameters do not match the network".into())
}

/// Parameter `i` as an array of dimension `D`.
pub(crate) fn param<D: Dimension>(params: &[ArrayD<f32>], i: usize) -> Result<ArrayView<'_, f32, D>> {
    params.get(i).ok_or_else(mismatch)?.view().into_dimensionality::<D>().map_err(|_| mismatch())
}

/// Weights drawn uniformly from `±√(6/fan_in)` (He initialisation).
pub(crate) fn he_uniform(shape: &[usize], fan_in: usize, rng: &mut ChaCha8Rng) -> ArrayD<f32> {
    let limit = (6.0 / fan_in as f32).sqrt();
    ArrayD::from_shape_simple_fn(IxDyn(shape), || rng.random_range(-limit..limit))
}

/// `[N, C, H, W]`, or a shape error naming `op`.
pub(crate) fn dims4(op: &'static str, shape: &[usize]) -> Result<[usize; 4]> {
    match *shape {
        [b, c, h, w] => Ok([b, c, h, w]),
        _ => Err(Error::shape(op, "[N, C, H, W]", shape)),
    }
}
