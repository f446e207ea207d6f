//! Imports ONNX networks — exported by PyTorch, scikit-learn (skl2onnx), Keras and others — as more-nn
//! models that run unchanged on plaintext and on MORE ciphertexts.
//!
//! The importer reads sequential networks: one input, one output, and between them a chain of operators
//! each of which reads the value computed so far and constants (initializers, `Constant` nodes). It
//! translates `Conv`, `Gemm`, `MatMul`, `Relu`, `Sigmoid`, `Tanh`, `MaxPool`, `AveragePool`,
//! `GlobalAveragePool`, `Flatten`, `Reshape` (to flat, or of the raw input), `Softmax` at the end, and a
//! square (`Mul(x, x)`, `Pow(x, 2)`); it folds `Add`/`Sub` of a constant, `Mul`/`Div` by a constant and
//! `BatchNormalization` into the linear layer next to them, and drops `Identity`, `Dropout` and `Cast` to
//! float. Anything else is refused with an error naming the operator, the node and the opset.
//!
//! ```no_run
//! let bytes = std::fs::read("model.onnx").unwrap();
//! let options = more_onnx::ImportOptions::new("my-mlp", "mnist");
//! let imported = more_onnx::import(&bytes, &options).unwrap();
//! imported.model.save("my-mlp.morenn").unwrap();
//! ```

mod attrs;
mod builder;
pub mod error;
mod graph;
mod ops;
#[allow(missing_docs, clippy::all, clippy::pedantic)]
pub mod proto;
pub mod sample;
mod tensor;

use more_nn::{Layer, LayerSpec, Model, ModelMeta, OutputKind, Preprocessing};
use prost::Message;

pub use error::{ImportError, Result};

/// The largest ONNX file [`import`] decodes (bytes).
pub const MAX_FILE_BYTES: usize = 256 << 20;

/// The most parameters (weights and biases together) an imported model may have.
pub const MAX_PARAMETERS: usize = 64 << 20;

/// What the imported model's metadata says beyond the graph: its id, task, preprocessing and labels.
#[derive(Debug, Clone)]
pub struct ImportOptions {
    /// The model id the server lists it by.
    pub model_id: String,
    /// `"mnist"`, `"angio"`, `"wbc"` or another task name.
    pub task: String,
    /// One sentence; empty for a description made from the file.
    pub description: String,
    /// How inputs are prepared (`x · scale`, then `(x − mean) / std`).
    pub preprocessing: Preprocessing,
    /// Class names (or output names for regression).
    pub labels: Vec<String>,
    /// Regression outputs (values) rather than class scores.
    pub regression: bool,
    /// The graph output to take, when the graph has several float outputs.
    pub output: Option<String>,
    /// Leave a final softmax out (the class is the same; the outputs are then logits).
    pub drop_softmax: bool,
}

impl ImportOptions {
    /// Options with raw inputs (scale 1, mean 0, std 1), no labels and a classifier's outputs.
    pub fn new(model_id: impl Into<String>, task: impl Into<String>) -> Self {
        let meta = ModelMeta::new("", "");
        ImportOptions {
            model_id: model_id.into(),
            task: task.into(),
            description: String::new(),
            preprocessing: meta.preprocessing,
            labels: Vec::new(),
            regression: false,
            output: None,
            drop_softmax: false,
        }
    }
}

/// An imported model and what the import did.
#[derive(Debug)]
pub struct Imported {
    /// The model, ready to save, serve or run.
    pub model: Model,
    /// What was read, folded and dropped.
    pub report: Report,
}

impl Imported {
    /// Gives the model the id, task, description, preprocessing, labels and output kind of `options` (the
    /// metadata only: `output` and `drop_softmax` shape the translation and are read by [`import`]). A
    /// caller that picks the task from the imported input shape imports once, then describes.
    pub fn describe(&mut self, options: &ImportOptions) {
        let report = &self.report;
        let meta = self.model.meta_mut();
        meta.id = options.model_id.clone();
        meta.task = options.task.clone();
        meta.description = if options.description.is_empty() {
            format!("Imported from ONNX ({}, opset {})", report.producer, report.opset)
        } else {
            options.description.clone()
        };
        meta.preprocessing = options.preprocessing.clone();
        meta.labels = options.labels.clone();
        meta.output_kind = if options.regression {
            OutputKind::Values
        } else if report.ends_in_softmax {
            OutputKind::Probabilities
        } else {
            OutputKind::Logits
        };
    }
}

/// What an import read and did.
#[derive(Debug, Clone)]
pub struct Report {
    /// The exporter (`producer_name` and `producer_version`), e.g. `"pytorch 2.15.0"`.
    pub producer: String,
    /// The default domain's opset version.
    pub opset: i64,
    /// The ONNX IR version.
    pub ir_version: i64,
    /// The graph input and output read.
    pub input: String,
    /// See `input`.
    pub output: String,
    /// Operator types on the path from input to output.
    pub operators: Vec<String>,
    /// Operators folded into linear layers.
    pub folded: Vec<String>,
    /// Operators dropped as no-ops at inference.
    pub dropped: Vec<String>,
    /// Weights and biases in the model.
    pub parameters: usize,
    /// The model ends in the graph's softmax (its outputs are probabilities).
    pub ends_in_softmax: bool,
    /// Whether BFV can evaluate the network (`Ok`), or why not: only polynomial activations (squares),
    /// average pooling and linear layers are BFV-evaluable.
    pub bfv: std::result::Result<(), String>,
}

/// Imports an ONNX model from its bytes.
pub fn import(bytes: &[u8], options: &ImportOptions) -> Result<Imported> {
    if bytes.len() > MAX_FILE_BYTES {
        return Err(ImportError::TooLarge(format!("{} bytes (at most {MAX_FILE_BYTES})", bytes.len())));
    }
    let model = proto::ModelProto::decode(bytes).map_err(|e| ImportError::Decode(e.to_string()))?;
    let chain = graph::chain(&model, options.output.as_deref())?;
    let (input_shape, builder, notes) = ops::translate(&chain, options.drop_softmax)?;
    let built = builder.finish().map_err(ImportError::Graph)?;
    let parameters: usize = built.iter().flat_map(|l| l.params.iter()).map(|p| p.len()).sum();
    if parameters > MAX_PARAMETERS {
        return Err(ImportError::TooLarge(format!("{parameters} parameters (at most {MAX_PARAMETERS})")));
    }
    if let Some(bad) = built.iter().flat_map(|l| l.params.iter()).find(|p| p.iter().any(|v| !v.is_finite())) {
        return Err(ImportError::Graph(format!("a parameter tensor of shape {:?} holds NaN or infinity", bad.shape())));
    }
    let bfv = bfv_evaluable(built.iter().map(|l| &l.spec));
    let layers = built.into_iter().map(|l| Layer::new(l.spec, l.params)).collect::<more_nn::Result<Vec<_>>>()?;
    let producer = format!(
        "{} {}",
        model.producer_name.as_deref().filter(|s| !s.is_empty()).unwrap_or("unknown exporter"),
        model.producer_version.as_deref().unwrap_or("")
    )
    .trim()
    .to_string();
    let mut meta = ModelMeta::new(options.model_id.clone(), options.task.clone());
    meta.training.insert("imported_from".into(), format!("ONNX, {producer}, opset {}", chain.opset));
    let report = Report {
        producer,
        opset: chain.opset,
        ir_version: model.ir_version.unwrap_or(0),
        input: chain.input.clone(),
        output: chain.output.clone(),
        operators: notes.operators,
        folded: notes.folded,
        dropped: notes.dropped,
        parameters,
        ends_in_softmax: notes.softmax && !options.drop_softmax,
        bfv,
    };
    let mut imported = Imported { model: Model::new(meta, &input_shape, layers)?, report };
    imported.describe(options);
    Ok(imported)
}

/// `Ok` when every layer is one BFV evaluates exactly, else why not. A layer is BFV-evaluable exactly when
/// it is ring-only under MORE ([`LayerSpec::is_ring_only`]: additions and multiplications by public
/// values and by itself — linear layers, squares, average pooling, flattening), since BFV offers the same
/// ring operations on integers; anything that reads MORE's 2x2 structure (ReLU, max, exp) is not a
/// polynomial.
pub fn bfv_evaluable<'a>(layers: impl IntoIterator<Item = &'a LayerSpec>) -> std::result::Result<(), String> {
    match layers.into_iter().find(|spec| !spec.is_ring_only()) {
        None => Ok(()),
        Some(spec) => Err(format!(
            "{} is not a polynomial: BFV adds and multiplies integers only (use squares and average pooling, \
             and drop a final softmax)",
            spec.describe()
        )),
    }
}
