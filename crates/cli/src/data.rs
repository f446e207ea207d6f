//! Locating and loading data sets and model files (read-only, from `../shared/data`, `--data DIR` or
//! `MORE_DATA`).

use std::path::{Path, PathBuf};

use anyhow::Result;
use ndarray::ArrayD;

use more_nn::Model;
use more_nn::idx::{self, ImageSet};

/// The data directory: `--data`, else `MORE_DATA`, else `../shared/data` from the current directory if it
/// exists, else relative to the repository this binary was built from.
pub fn data_dir(explicit: Option<&Path>) -> PathBuf {
    if explicit.is_none() && std::env::var_os("MORE_DATA").is_none() {
        let local = Path::new("../shared/data");
        if local.is_dir() {
            return local.to_path_buf();
        }
    }
    idx::data_dir(explicit)
}

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
