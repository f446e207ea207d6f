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
pub fn model_for_task(path: &Path, task: &str, input: &[usize]) -> Result<Model> {
    let model = Model::load(path)?;
    let meta = model.meta();
    anyhow::ensure!(
        meta.input_shape == input,
        "{} is the {} model {:?} with input {:?}; {task} needs input {input:?}",
        path.display(),
        meta.task,
        meta.id,
        meta.input_shape
    );
    Ok(model)
}
