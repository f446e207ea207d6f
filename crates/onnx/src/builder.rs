//! The layer list an import produces, and the folding of affine operators (bias, batch normalisation,
//! multiplication by a constant) into the linear layer next to them, so the model has only layers that
//! more-nn runs on plaintext and ciphertexts.

use more_nn::{ElementFunction, LayerSpec};
use ndarray::{ArrayD, Axis, IxDyn};

/// A layer with its parameters in [`LayerSpec::param_shapes`] order.
#[derive(Debug, Clone)]
pub struct Built {
    /// The layer.
    pub spec: LayerSpec,
    /// Its parameters.
    pub params: Vec<ArrayD<f32>>,
}

/// Layers in order, the per-sample shape after them, and what may still fold.
#[derive(Debug)]
pub struct Builder {
    /// The layers so far.
    pub layers: Vec<Built>,
    /// Per-sample shape of the value the next operator reads (more-nn's view: `[C, H, W]` or `[n]`).
    pub shape: Vec<usize>,
    /// The last layer is linear (dense or convolution) and nothing has come after it: a bias, a batch
    /// normalisation or a per-channel scale folds into it exactly.
    open_linear: bool,
    /// A scalar multiplication met after a nonlinearity, to fold into the next linear layer's weights.
    pending_scale: Option<f32>,
}

impl Builder {
    /// An empty network reading a per-sample `shape`.
    pub fn new(shape: Vec<usize>) -> Builder {
        Builder { layers: Vec::new(), shape, open_linear: false, pending_scale: None }
    }

    /// Appends a linear layer (its weight already in more-nn's layout), folding a pending scale into it.
    pub fn linear(&mut self, spec: LayerSpec, mut weight: ArrayD<f32>, bias: ArrayD<f32>, shape: Vec<usize>) {
        if let Some(s) = self.pending_scale.take() {
            weight.mapv_inplace(|w| w * s);
        }
        self.layers.push(Built { spec, params: vec![weight, bias] });
        self.shape = shape;
        self.open_linear = true;
    }

    /// Appends a parameter-free layer. `commutes_with_scale`: a pending positive scale may pass it
    /// (pooling, flattening); anything else first needs the scale folded, which is then impossible.
    pub fn plain(&mut self, spec: LayerSpec, shape: Vec<usize>, commutes_with_scale: bool) -> Result<(), String> {
        if let Some(s) = self.pending_scale {
            let passes = commutes_with_scale && (s > 0.0 || !matches!(spec, LayerSpec::MaxPool { .. }));
            if !passes {
                return Err(format!(
                    "a multiplication by {s} before {} cannot be folded into a linear layer",
                    describe(&spec)
                ));
            }
        }
        self.layers.push(Built { spec, params: Vec::new() });
        self.shape = shape;
        self.open_linear = false;
        Ok(())
    }

    /// Appends an element-wise activation.
    pub fn activation(&mut self, function: ElementFunction) -> Result<(), String> {
        let shape = self.shape.clone();
        self.plain(LayerSpec::Activation { function }, shape, false)
    }

    /// Channels of the current value: the first axis (`C` of `[C, H, W]`, `n` of `[n]`).
    pub fn channels(&self) -> usize {
        self.shape.first().copied().unwrap_or(1)
    }

    /// `y = x·s + b` per output channel of the last linear layer (`s`, `b` of length [`Self::channels`]);
    /// `Err` when the previous operator is not an open linear layer.
    pub fn affine(&mut self, scale: Option<&[f32]>, shift: Option<&[f32]>) -> Result<(), String> {
        if !self.open_linear {
            return Err(
                "it does not follow a dense or convolution layer directly, so it cannot be folded into one".into()
            );
        }
        let last = self.layers.last_mut().expect("an open linear layer exists");
        let (weight, bias) = last.params.split_at_mut(1);
        let (weight, bias) = (&mut weight[0], &mut bias[0]);
        // Dense weights are [inputs, outputs] (outputs on axis 1); convolution weights [out, in, kh, kw].
        let out_axis = if matches!(last.spec, LayerSpec::Dense { .. }) { Axis(1) } else { Axis(0) };
        if let Some(s) = scale {
            for (mut lane, &s) in weight.axis_iter_mut(out_axis).zip(s) {
                lane.mapv_inplace(|w| w * s);
            }
            for (b, &s) in bias.iter_mut().zip(s) {
                *b *= s;
            }
        }
        if let Some(t) = shift {
            for (b, &t) in bias.iter_mut().zip(t) {
                *b += t;
            }
        }
        Ok(())
    }

    /// A multiplication by the scalar `s`: folded into the open linear layer, else kept for the next one.
    pub fn scale(&mut self, s: f32) {
        if self.open_linear {
            let c = self.channels();
            self.affine(Some(&vec![s; c]), None).expect("open linear layer");
        } else {
            self.pending_scale = Some(self.pending_scale.unwrap_or(1.0) * s);
        }
    }

    /// Closes the network: a scale still pending has no layer to go into.
    pub fn finish(self) -> Result<Vec<Built>, String> {
        if let Some(s) = self.pending_scale {
            return Err(format!("the network ends with a multiplication by {s} that no layer follows to absorb it"));
        }
        Ok(self.layers)
    }
}

/// A short name for messages.
fn describe(spec: &LayerSpec) -> String {
    match spec {
        LayerSpec::Activation { function } => format!("{function:?}"),
        other => format!("{other:?}").split([' ', '{']).next().unwrap_or("a layer").to_string(),
    }
}

/// A constant applied per channel to a value of per-sample shape `shape` (`[C, H, W]` or `[n]`), as a
/// vector of length `C` (or `n`): scalars broadcast; `[C]`/`[1, C]` for flat values, `[C, 1, 1]` /
/// `[1, C, 1, 1]` for images. `None` when it varies along other axes.
pub fn per_channel(c: &ArrayD<f32>, shape: &[usize]) -> Option<Vec<f32>> {
    let channels = shape.first().copied().unwrap_or(1);
    if c.len() == 1 {
        return Some(vec![c.iter().next().copied().unwrap_or(0.0); channels]);
    }
    let dims: Vec<usize> = c.shape().to_vec();
    // Drop a leading batch axis of 1, then compare with [C] or [C, 1, 1].
    let dims = if dims.len() == shape.len() + 1 && dims[0] == 1 { dims[1..].to_vec() } else { dims };
    let fits = match shape.len() {
        1 => dims == [channels],
        3 => dims == [channels, 1, 1],
        _ => false,
    };
    fits.then(|| c.iter().copied().collect())
}

/// `a` reshaped to `shape` (same element count), for weights read in another layout.
pub fn reshaped(a: ArrayD<f32>, shape: &[usize]) -> Option<ArrayD<f32>> {
    let a = if a.is_standard_layout() { a } else { a.as_standard_layout().into_owned() };
    a.into_shape_with_order(IxDyn(shape)).ok()
}
