//! The model file: JSON with the scheme's parameters, the integer network, how it was quantized and its
//! measured metrics. Loading checks the size and that the parameters are this build's.

use std::collections::BTreeMap;
use std::path::Path;

use serde::{Deserialize, Serialize};

use crate::network::{QuantizedNet, Ranges};
use crate::params::{SchemeInfo, check_scheme};
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
    /// `"mnist"`.
    pub task: String,
    /// One sentence.
    pub description: String,
    /// Layers, as text.
    pub architecture: String,
    /// Parameters the network was checked for.
    pub scheme: SchemeInfo,
    /// How the float model became integers.
    pub quantization: BTreeMap<String, String>,
    /// Largest magnitudes over the test set (each must stay below `t/2`).
    pub ranges: Ranges,
    /// Measured figures (accuracy of the integer network, agreement with BFV, ...).
    pub metrics: BTreeMap<String, f64>,
    /// Data set, seed, commands.
    pub training: BTreeMap<String, String>,
    /// Class names.
    pub labels: Vec<String>,
    /// The integer weights.
    pub network: QuantizedNet,
}

impl BfvModel {
    /// Parses and checks a model file's bytes.
    pub fn from_json(bytes: &[u8]) -> Result<BfvModel> {
        if bytes.len() as u64 > MAX_MODEL_BYTES {
            return Err(BfvError::Model(format!("{} bytes, at most {MAX_MODEL_BYTES}", bytes.len())));
        }
        let model: BfvModel = serde_json::from_slice(bytes).map_err(|e| BfvError::Model(e.to_string()))?;
        if model.format != FORMAT || model.version != VERSION {
            return Err(BfvError::Model(format!("format {:?} version {}", model.format, model.version)));
        }
        check_scheme(&model.scheme)?;
        model.network.validate()?;
        Ok(model)
    }

    /// Reads a model file.
    pub fn load(path: impl AsRef<Path>) -> Result<BfvModel> {
        let path = path.as_ref();
        let io = |e: std::io::Error| BfvError::Model(format!("{}: {e}", path.display()));
        let len = std::fs::metadata(path).map_err(io)?.len();
        if len > MAX_MODEL_BYTES {
            return Err(BfvError::Model(format!("{}: {len} bytes, at most {MAX_MODEL_BYTES}", path.display())));
        }
        BfvModel::from_json(&std::fs::read(path).map_err(io)?)
    }

    /// Writes the model file (pretty JSON header fields, one line of weights per layer).
    pub fn save(&self, path: impl AsRef<Path>) -> Result<()> {
        let json = serde_json::to_vec(self).map_err(|e| BfvError::Model(e.to_string()))?;
        std::fs::write(path.as_ref(), json).map_err(|e| BfvError::Model(format!("{}: {e}", path.as_ref().display())))
    }
}
