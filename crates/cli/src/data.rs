//! Locating and loading the data sets (read-only, from `../shared/data`, `--data DIR` or `MORE_DATA`).

use std::path::{Path, PathBuf};

use anyhow::{Context, Result};
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

/// The command line as a model file records it: `more` and the arguments, whatever path the binary ran
/// from (`./target/release/more`, `cargo run`'s `target/...`), so the record reads as the documented command.
pub fn command_line() -> String {
    std::iter::once("more".to_string()).chain(std::env::args().skip(1)).collect::<Vec<_>>().join(" ")
}

/// Index of the largest value (the first on ties; 0 when empty): the predicted class of one output row.
pub fn argmax<'a>(values: impl IntoIterator<Item = &'a f32>) -> usize {
    values.into_iter().enumerate().fold((0, f32::NEG_INFINITY), |b, (i, &v)| if v > b.1 { (i, v) } else { b }).0
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

/// An MNIST split as model inputs `[N, 1, 28, 28]` in `[0, 1]`, one-hot targets `[N, 10]` and labels.
pub struct Mnist {
    /// Inputs.
    pub inputs: ArrayD<f32>,
    /// One-hot targets.
    pub targets: ArrayD<f32>,
    /// Labels.
    pub labels: Vec<u8>,
}

/// Loads an MNIST split (`"train"` or `"test"`), optionally only the first `limit` images.
pub fn mnist(dir: &Path, split: &str, limit: Option<usize>) -> Result<Mnist> {
    let set: ImageSet =
        idx::load_mnist(dir, split).with_context(|| format!("loading MNIST {split} from {}", dir.display()))?;
    let set = match limit {
        Some(n) => set.take(n),
        None => set,
    };
    Ok(Mnist { inputs: set.inputs(1.0 / 255.0, 0.0, 1.0), targets: set.one_hot(10).into_dyn(), labels: set.labels })
}
