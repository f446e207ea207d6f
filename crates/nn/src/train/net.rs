//! [`Net`]: a trainable network generic over the tensor [`Algebra`], with forward and backward passes.
//! Each layer's passes are those of its family (see [`crate::layers`]).

use ndarray::IxDyn;
use rand_chacha::ChaCha8Rng;

use crate::algebra::{Algebra, Reveal};
use crate::error::{Error, Result};
use crate::layers::{Layer, LayerSpec, Saved};
use crate::model::{Model, ModelMeta};

/// One layer: its spec and its parameters as tensors of the algebra (in the spec's training shapes).
#[derive(Debug, Clone)]
struct Unit<A: Algebra> {
    spec: LayerSpec,
    params: Vec<A::Tensor>,
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

impl<A: Algebra> Net<A> {
    /// A network with freshly initialised parameters (He-uniform weights, zero biases), drawn from `rng`.
    pub fn new(alg: &A, input_shape: &[usize], specs: &[LayerSpec], rng: &mut ChaCha8Rng) -> Result<Self> {
        let params = specs.iter().map(|spec| spec.init(rng)).collect();
        Self::from_params(alg, input_shape, specs, params)
    }

    /// A network with the given parameters per layer (in [`LayerSpec::param_shapes`] order).
    pub fn from_params(
        alg: &A,
        input_shape: &[usize],
        specs: &[LayerSpec],
        params: Vec<Vec<ndarray::ArrayD<f32>>>,
    ) -> Result<Self> {
        if params.len() != specs.len() {
            return Err(Error::InvalidModel("one parameter list per layer".into()));
        }
        // Validate the chain with the inference layers (same shape rules).
        let layers =
            specs.iter().zip(params.iter()).map(|(s, p)| s.build(p.clone())).collect::<Result<Vec<Layer>>>()?;
        Model::new(ModelMeta::new("check", "check"), input_shape, layers)?;
        let mut units = Vec::with_capacity(specs.len());
        for (spec, ps) in specs.iter().zip(params) {
            let params = ps
                .into_iter()
                .zip(spec.training_shapes())
                .map(|(p, shape)| {
                    let p = if p.shape() == shape.as_slice() {
                        p
                    } else {
                        p.as_standard_layout()
                            .into_owned()
                            .into_shape_with_order(IxDyn(&shape))
                            .map_err(|_| Error::InvalidModel("parameter size".into()))?
                    };
                    alg.parameter(p)
                })
                .collect::<Result<Vec<_>>>()?;
            units.push(Unit { spec: spec.clone(), params });
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
        self.units.iter().flat_map(|u| &u.params).collect()
    }

    /// Mutable access to all parameters, in [`Self::params`] order.
    pub fn params_mut(&mut self) -> Vec<&mut A::Tensor> {
        self.units.iter_mut().flat_map(|u| &mut u.params).collect()
    }

    /// Reveals the parameters (key owner) and builds an inference [`Model`].
    pub fn to_model<R: Reveal<A> + ?Sized>(&self, reveal: &R, meta: ModelMeta) -> Result<Model> {
        let mut layers = Vec::with_capacity(self.units.len());
        for u in &self.units {
            let mut ps = Vec::with_capacity(u.params.len());
            for (p, shape) in u.params.iter().zip(u.spec.param_shapes()) {
                let t = reveal.reveal(p)?;
                ps.push(
                    t.into_shape_with_order(IxDyn(&shape)).map_err(|_| Error::InvalidModel("parameter size".into()))?,
                );
            }
            layers.push(u.spec.build(ps)?);
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
            let (y, keep) = u.spec.forward(alg, &u.params, &x)?;
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
        if tape.saved.len() != self.units.len() {
            return Err(Error::InvalidModel("tape does not match the network".into()));
        }
        let mut grads: Vec<Vec<A::Tensor>> = Vec::with_capacity(self.units.len());
        let mut g = grad;
        for (u, saved) in self.units.iter().zip(tape.saved).rev() {
            let (gx, pg) = u.spec.backward(alg, &u.params, saved, g)?;
            grads.push(pg);
            g = gx;
        }
        Ok(grads.into_iter().rev().flatten().collect())
    }
}
