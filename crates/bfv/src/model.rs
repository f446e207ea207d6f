//! The model files: JSON with the scheme's parameters, the integer network, how it was quantized and its
//! measured metrics. Loading checks the size and that the parameters are this build's.
//!
//! Two kinds share the header fields and the `.bfv.json` suffix: [`BfvModel`] (the image classifiers,
//! `task: "mnist"` and `task: "angio"`, one network shape with their own class counts) and [`BfvRegressionModel`] (the WBC regression network, `task: "wbc"`).
//! [`peek_task`] tells them apart before parsing either.

use std::collections::BTreeMap;
use std::path::Path;

use serde::{Deserialize, Serialize};

use crate::network::{QuantizedNet, Ranges};
use crate::params::{SchemeInfo, check_scheme};
use crate::regression::{FloatWeights, RegressionNet, RegressionRanges};
use crate::{BfvError, Result};

/// The `format` field of a model file.
pub const FORMAT: &str = "more-bfv-model";
/// The current version.
pub const VERSION: u32 = 1;
/// File name suffix.
pub const FILE_SUFFIX: &str = ".bfv.json";
/// Largest model file read.
pub const MAX_MODEL_BYTES: u64 = 4 << 20;

/// A quantized network for BFV with its metadata.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct BfvModel {
    /// [`FORMAT`].
    pub format: String,
    /// [`VERSION`].
    pub version: u32,
    /// E.g. `"mnist-bfv-square"`.
    pub id: String,
    /// `"mnist"` or `"angio"`.
    pub task: String,
    /// One sentence.
    pub description: String,
    /// Layers, as text.
    pub architecture: String,
    /// Parameters the network was checked for.
    pub scheme: SchemeInfo,
    /// How the float model became integers.
    pub quantization: BTreeMap<String, String>,
    /// Largest magnitudes over the images checked when it was quantized (each must stay below `t/2`): the
    /// test set for MNIST, every training and validation frame for the angiograms.
    pub ranges: Ranges,
    /// Measured figures (accuracy of the integer network, agreement with BFV, ...).
    pub metrics: BTreeMap<String, f64>,
    /// Data set, seed, commands.
    pub training: BTreeMap<String, String>,
    /// Class names, one per logit.
    pub labels: Vec<String>,
    /// The integer weights.
    pub network: QuantizedNet,
}

impl BfvModel {
    /// Parses and checks a model file's bytes.
    pub fn from_json(bytes: &[u8]) -> Result<BfvModel> {
        check_size(bytes)?;
        if matches!(peek_task(bytes).as_deref(), Ok(REGRESSION_TASK)) {
            return Err(BfvError::Model(format!(
                "a {REGRESSION_TASK} regression model, not a classifier (load it as a BfvRegressionModel)"
            )));
        }
        let model: BfvModel = serde_json::from_slice(bytes).map_err(|e| BfvError::Model(e.to_string()))?;
        check_format(&model.format, model.version)?;
        check_scheme(&model.scheme)?;
        model.network.validate()?;
        if model.labels.len() != model.network.classes() {
            return Err(BfvError::Model(format!(
                "{} labels for a network of {} classes",
                model.labels.len(),
                model.network.classes()
            )));
        }
        Ok(model)
    }

    /// Reads a model file.
    pub fn load(path: impl AsRef<Path>) -> Result<BfvModel> {
        BfvModel::from_json(&read_limited(path.as_ref())?)
    }

    /// Writes the model file (compact JSON).
    pub fn save(&self, path: impl AsRef<Path>) -> Result<()> {
        write_json(self, path.as_ref())
    }
}

/// The task of [`BfvRegressionModel`] files.
pub const REGRESSION_TASK: &str = "wbc";

/// The `task` field of a model file's bytes, read without parsing the network (at most
/// [`MAX_MODEL_BYTES`]).
pub fn peek_task(bytes: &[u8]) -> Result<String> {
    #[derive(Deserialize)]
    struct Header {
        task: String,
    }
    check_size(bytes)?;
    let h: Header = serde_json::from_slice(bytes).map_err(|e| BfvError::Model(e.to_string()))?;
    Ok(h.task)
}

/// A model file's bytes are at most [`MAX_MODEL_BYTES`].
fn check_size(bytes: &[u8]) -> Result<()> {
    if bytes.len() as u64 > MAX_MODEL_BYTES {
        return Err(BfvError::Model(format!("{} bytes, at most {MAX_MODEL_BYTES}", bytes.len())));
    }
    Ok(())
}

/// A model file's `format` and `version` are this build's.
fn check_format(format: &str, version: u32) -> Result<()> {
    if format != FORMAT || version != VERSION {
        return Err(BfvError::Model(format!("format {format:?} version {version}")));
    }
    Ok(())
}

/// Writes a model file as compact JSON.
fn write_json(model: &impl Serialize, path: &Path) -> Result<()> {
    let json = serde_json::to_vec(model).map_err(|e| BfvError::Model(e.to_string()))?;
    std::fs::write(path, json).map_err(|e| BfvError::Model(format!("{}: {e}", path.display())))
}

/// Reads a file of at most [`MAX_MODEL_BYTES`].
fn read_limited(path: &Path) -> Result<Vec<u8>> {
    let io = |e: std::io::Error| BfvError::Model(format!("{}: {e}", path.display()));
    let len = std::fs::metadata(path).map_err(io)?.len();
    if len > MAX_MODEL_BYTES {
        return Err(BfvError::Model(format!("{}: {len} bytes, at most {MAX_MODEL_BYTES}", path.display())));
    }
    std::fs::read(path).map_err(io)
}

/// The task of a model file, read without parsing the network.
pub fn peek_task_of(path: impl AsRef<Path>) -> Result<String> {
    peek_task(&read_limited(path.as_ref())?)
}

/// A regression network for BFV ([`RegressionNet`], `task: "wbc"`) with its metadata: the same header
/// fields as [`BfvModel`], the ranges of the regression network, and output names and units.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct BfvRegressionModel {
    /// [`FORMAT`].
    pub format: String,
    /// [`VERSION`].
    pub version: u32,
    /// E.g. `"wbc-bfv-square"`.
    pub id: String,
    /// [`REGRESSION_TASK`].
    pub task: String,
    /// One sentence.
    pub description: String,
    /// Layers, as text.
    pub architecture: String,
    /// Parameters the network was checked for.
    pub scheme: SchemeInfo,
    /// How the float model became integers.
    pub quantization: BTreeMap<String, String>,
    /// Worst cases over the accepted input box (each below `t/2`).
    pub ranges: RegressionRanges,
    /// Largest magnitudes met over the training and held-out samples.
    pub sample_ranges: RegressionRanges,
    /// Measured figures (per-output mean relative errors of the float, integer and BFV networks, ...).
    pub metrics: BTreeMap<String, f64>,
    /// Data set, seed, commands.
    pub training: BTreeMap<String, String>,
    /// Input names, in order.
    pub input_names: Vec<String>,
    /// Output names, in order.
    pub labels: Vec<String>,
    /// Output units, in order.
    pub units: Vec<String>,
    /// The integer weights and the scaling.
    pub network: RegressionNet,
    /// The float weights it was quantized from.
    pub float_network: FloatWeights,
}

impl BfvRegressionModel {
    /// Parses and checks a model file's bytes (format, parameters, task, network, names).
    pub fn from_json(bytes: &[u8]) -> Result<BfvRegressionModel> {
        check_size(bytes)?;
        let model: BfvRegressionModel = serde_json::from_slice(bytes).map_err(|e| BfvError::Model(e.to_string()))?;
        check_format(&model.format, model.version)?;
        if model.task != REGRESSION_TASK {
            return Err(BfvError::Model(format!("task {:?}, expected {REGRESSION_TASK:?}", model.task)));
        }
        check_scheme(&model.scheme)?;
        model.network.validate()?;
        let n = &model.network;
        let f = &model.float_network;
        let float_ok = f.hidden_weight.len() == n.hidden * n.inputs
            && f.hidden_bias.len() == n.hidden
            && f.output_weight.len() == n.outputs * n.hidden
            && f.output_bias.len() == n.outputs;
        if !float_ok {
            return Err(BfvError::Model("the float weights do not match the integer network's shape".into()));
        }
        if model.input_names.len() != n.inputs || model.labels.len() != n.outputs || model.units.len() != n.outputs {
            return Err(BfvError::Model("input names, output names or units do not match the network".into()));
        }
        Ok(model)
    }

    /// Reads a model file.
    pub fn load(path: impl AsRef<Path>) -> Result<BfvRegressionModel> {
        let path = path.as_ref();
        BfvRegressionModel::from_json(&read_limited(path)?)
            .map_err(|e| BfvError::Model(format!("{}: {e}", path.display())))
    }

    /// Writes the model file (compact JSON).
    pub fn save(&self, path: impl AsRef<Path>) -> Result<()> {
        write_json(self, path.as_ref())
    }
}
