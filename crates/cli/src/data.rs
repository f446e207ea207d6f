//! Loading data sets and model files (read-only; where they are is `crate::paths`).

use std::path::Path;

use anyhow::Result;
use ndarray::ArrayD;

use more_nn::Model;
use more_nn::idx::ImageSet;

/// Images as model inputs `[N, 1, H, W]`, with their one-hot targets and labels.
pub struct LabelledImages {
    /// Inputs.
    pub inputs: ArrayD<f32>,
    /// One-hot targets `[N, classes]`.
    pub targets: ArrayD<f32>,
    /// Labels.
    pub labels: Vec<u8>,
}

impl LabelledImages {
    /// `set` (optionally only its first `limit` images) with pixels `p` as `p / 255`.
    pub fn new(set: ImageSet, limit: Option<usize>, classes: usize) -> LabelledImages {
        let set = match limit {
            Some(n) => set.take(n),
            None => set,
        };
        LabelledImages { inputs: set.unit_inputs(), targets: set.one_hot(classes).into_dyn(), labels: set.labels }
    }
}

/// Loads a model file for `task`, refusing upfront (before any data is read) a model whose input shape is
/// not `input` — e.g. an MNIST model given to `more eval angio` — with a message that says which is which.
/// A flat model reading the same number of values (an imported `[784]` MNIST network) is accepted: see
/// [`inputs_for`].
pub fn model_for_task(path: &Path, task: &str, input: &[usize]) -> Result<Model> {
    let model = Model::load(path)?;
    let meta = model.meta();
    let flat_same = meta.input_shape.len() == 1 && meta.input_shape[0] == input.iter().product::<usize>();
    anyhow::ensure!(
        meta.input_shape == input || flat_same,
        "{} is the {} model {:?} with input {:?}; {task} needs input {input:?}",
        path.display(),
        meta.task,
        meta.id,
        meta.input_shape
    );
    Ok(model)
}

/// The loader's inputs (`[N, ...]`, pixels `p / 255`) as `model` reads them: normalised by the model's own
/// preprocessing when it is not `p / 255` (an imported network trained with a mean and standard
/// deviation), and in the model's input shape (a flat model reads each image's values in order).
pub fn inputs_for(model: &Model, inputs: &ArrayD<f32>) -> Result<ArrayD<f32>> {
    let norm = model.meta().preprocessing.normalization()?;
    let unit = norm.scale == 1.0 / 255.0 && norm.mean.iter().all(|&m| m == 0.0) && norm.std.iter().all(|&d| d == 1.0);
    let mut x = inputs.as_standard_layout().into_owned();
    if !unit {
        let values = x.as_slice_mut().expect("standard layout");
        for v in values.iter_mut() {
            *v = (*v * 255.0).round();
        }
        norm.apply(values).map_err(|e| anyhow::anyhow!("the model's preprocessing: {e}"))?;
    }
    let mut shape = vec![x.shape()[0]];
    shape.extend_from_slice(model.input_shape());
    Ok(x.into_shape_with_order(ndarray::IxDyn(&shape))?)
}
