//! [`Model`]: layers plus metadata, one forward pass for plaintext and encrypted batches, and the model
//! file format.
//!
//! # File format (version 1)
//!
//! | offset | size | field |
//! |---|---|---|
//! | 0 | 8 | magic `MORENN` + version `01` as ASCII: `4D 4F 52 45 4E 4E 30 31` |
//! | 8 | 4 | `u32` LE: length `J` of the JSON header |
//! | 12 | `J` | UTF-8 JSON: `{"meta": ModelMeta, "layers": [LayerSpec...]}` |
//! | 12 + J | 4·P | the parameters as `f32` LE, layer by layer (weight, then bias), row-major |
//! | end − 4 | 4 | `u32` LE: CRC-32 (IEEE) of every preceding byte |
//!
//! `P` follows from the layer specs; a file whose length, checksum, JSON or shapes disagree is rejected
//! with [`Error::ModelFile`] naming the problem.

use std::collections::BTreeMap;
use std::path::Path;

use ndarray::{ArrayD, ArrayViewD, Axis, IxDyn};
use serde::{Deserialize, Serialize};

use more_core::{DType, EncryptedTensor};
use more_imaging::Normalization;

use crate::coefficient;
use crate::error::{Error, Result};
use crate::layers::{Batch, Layer, LayerSpec};

/// File magic and version.
pub const MAGIC: &[u8; 8] = b"MORENN01";
/// Samples (plaintext) or plane rows (encrypted: four per sample) per pass through the layers: keeps the
/// activations of one pass in cache.
pub const CHUNK_ROWS: usize = 64;

/// Concatenates chunk outputs (no copy for a single chunk).
fn join(mut parts: Vec<ArrayD<f32>>, axis: Axis) -> Result<ArrayD<f32>> {
    if parts.len() == 1 {
        return Ok(parts.pop().expect("one part"));
    }
    let views: Vec<_> = parts.iter().map(|p| p.view()).collect();
    ndarray::concatenate(axis, &views).map_err(|e| Error::InvalidModel(format!("joining chunks: {e}")))
}

/// Elements of a per-sample shape, `None` if a dimension is 0 or the product overflows `usize`.
pub fn elements(shape: &[usize]) -> Option<usize> {
    shape.iter().try_fold(1usize, |acc, &d| if d == 0 { None } else { acc.checked_mul(d) })
}

/// How [`Model::forward_encrypted_in`] runs an encrypted batch through the layers.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum EncryptedForm {
    /// Two coefficient planes `(α, β)` per sample (`C = α·I + β·J`): half the arithmetic and memory of
    /// the four planes. The conversion reads each sample's shared eigenbasis — **uses the 2x2
    /// structure**, even for a network whose layers are all ring-only ([`crate::coefficient`]).
    #[default]
    Coefficients,
    /// The four ciphertext planes `c00, c01, c10, c11`: ring-only layers stay ring-only.
    FourPlanes,
}

impl EncryptedForm {
    /// Planes per sample the layers run on: 2 or 4.
    pub fn planes(self) -> usize {
        match self {
            Self::Coefficients => 2,
            Self::FourPlanes => 4,
        }
    }

    /// Whether the form itself uses the 2x2 structure (the coefficient conversion does).
    pub fn uses_2x2_structure(self) -> bool {
        self == Self::Coefficients
    }

    /// A short name: `"coefficients"` or `"four_planes"`.
    pub fn name(self) -> &'static str {
        match self {
            Self::Coefficients => "coefficients",
            Self::FourPlanes => "four_planes",
        }
    }

    /// The entry listed beside a model's operations for this form, if any: the coefficient conversion,
    /// which uses the 2x2 structure.
    pub fn operation(self) -> Option<OperationInfo> {
        self.uses_2x2_structure()
            .then(|| OperationInfo { name: "coefficient form (2x2 structure)".into(), ring_only: false })
    }
}

/// File name extension of model files (`models/mnist-cnn-relu.morenn`).
pub const FILE_EXTENSION: &str = "morenn";
/// Largest model file accepted (64 MiB).
pub const MAX_FILE_BYTES: usize = 64 << 20;

/// How a client turns raw input into the model's input tensor.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Preprocessing {
    /// `"mnist-digit"` (crop to ink, fit 20x20, centre of mass in 28x28), `"angio-frame"` (grayscale,
    /// box-resize), `"wbc-params"`.
    pub kind: String,
    /// `[height, width]` the client resizes to, if any.
    pub resize: Option<[usize; 2]>,
    /// `x * scale` first (e.g. `1/255`).
    pub scale: f32,
    /// Then `(x - mean) / std`; length 1 (broadcast) or one per input feature.
    pub mean: Vec<f32>,
    /// See `mean`.
    pub std: Vec<f32>,
    /// Regression outputs: `value = y * output_scale + output_offset` (empty for classifiers).
    pub output_scale: Vec<f32>,
    /// See `output_scale`.
    pub output_offset: Vec<f32>,
}

impl Preprocessing {
    /// The input normalisation `x·scale`, then `(x − mean)/std` — `more_imaging`'s [`Normalization`], the
    /// one used by the browser (through wasm), the CLI and the server. Fails on non-finite values or a
    /// zero `std`.
    pub fn normalization(&self) -> Result<Normalization> {
        Normalization::new(self.scale, self.mean.clone(), self.std.clone())
            .map_err(|e| Error::InvalidModel(format!("preprocessing: {e}")))
    }

    /// Normalises raw values in place with [`Self::normalization`]. `x` holds whole samples: `mean` and
    /// `std` have length 1 (broadcast), or one entry per value of a sample.
    pub fn normalize(&self, x: &mut [f32]) -> Result<()> {
        self.normalization()?.apply(x).map_err(|e| Error::InvalidModel(format!("preprocessing: {e}")))
    }
}

/// What the model's outputs mean.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum OutputKind {
    /// Unnormalised class scores (argmax = class).
    Logits,
    /// Class probabilities (the model ends in softmax).
    Probabilities,
    /// Regression values (see [`Preprocessing::output_scale`]).
    Values,
}

/// One operation of the model and whether it runs on ciphertexts with ring operations only.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct OperationInfo {
    /// `"conv2d"`, `"relu"`, ...
    pub name: String,
    /// `false` when it uses the 2x2 structure (reads the eigenvalues).
    pub ring_only: bool,
}

/// A model's metadata, stored in its file.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct ModelMeta {
    /// E.g. `"mnist-cnn-relu"`.
    pub id: String,
    /// `"mnist"` | `"angio"` | `"wbc"`.
    pub task: String,
    /// One sentence.
    pub description: String,
    /// Human-readable layer list (filled in by [`Model::new`]).
    pub architecture: String,
    /// Input shape without the batch axis (filled in by [`Model::new`] from the argument).
    pub input_shape: Vec<usize>,
    /// Element type of ciphertext planes the model expects.
    pub dtype: DType,
    /// How to prepare inputs.
    pub preprocessing: Preprocessing,
    /// What the outputs are.
    pub output_kind: OutputKind,
    /// Class names, or output names for regression.
    pub labels: Vec<String>,
    /// The operations, in order (filled in by [`Model::new`]).
    pub operations: Vec<OperationInfo>,
    /// E.g. `"test_accuracy"`, `"encrypted_test_accuracy"`, `"max_logit_diff"`.
    pub metrics: BTreeMap<String, f64>,
    /// Data set, seed, command, date, epochs, ...
    pub training: BTreeMap<String, String>,
}

impl ModelMeta {
    /// Metadata with the given id and task, raw `[0, 1]` inputs, logits output and empty tables.
    pub fn new(id: impl Into<String>, task: impl Into<String>) -> Self {
        ModelMeta {
            id: id.into(),
            task: task.into(),
            description: String::new(),
            architecture: String::new(),
            input_shape: vec![],
            dtype: DType::F32,
            preprocessing: Preprocessing {
                kind: String::new(),
                resize: None,
                scale: 1.0,
                mean: vec![0.0],
                std: vec![1.0],
                output_scale: vec![],
                output_offset: vec![],
            },
            output_kind: OutputKind::Logits,
            labels: vec![],
            operations: vec![],
            metrics: BTreeMap::new(),
            training: BTreeMap::new(),
        }
    }
}

/// A network (layers with plaintext weights) plus metadata. Runs on plaintext and on encrypted batches
/// through the same layer code.
#[derive(Debug, Clone)]
pub struct Model {
    meta: ModelMeta,
    layers: Vec<Layer>,
    output_len: usize,
}

#[derive(Serialize, Deserialize)]
struct Header {
    meta: ModelMeta,
    layers: Vec<LayerSpec>,
}

impl Model {
    /// Builds a model, checking that the layers chain from `input_shape` to a 1-D output; fills in
    /// `meta.input_shape`, `meta.architecture` and `meta.operations`.
    pub fn new(mut meta: ModelMeta, input_shape: &[usize], layers: Vec<Layer>) -> Result<Model> {
        if input_shape.is_empty() || elements(input_shape).is_none() {
            return Err(Error::InvalidModel(format!("input shape {input_shape:?}")));
        }
        let mut shape = input_shape.to_vec();
        for (i, layer) in layers.iter().enumerate() {
            shape = layer
                .output_shape(&shape)
                .map_err(|e| Error::InvalidModel(format!("layer {i} ({}): {e}", layer.describe())))?;
            // Every later shape computation (a flatten's product, the memory estimates) may then multiply
            // the dimensions without overflowing.
            if elements(&shape).is_none() {
                return Err(Error::InvalidModel(format!(
                    "layer {i} ({}) gives the shape {shape:?}: an empty or impossibly large output",
                    layer.describe()
                )));
            }
        }
        if shape.len() != 1 {
            return Err(Error::InvalidModel(format!("output must be 1-D per sample, got {shape:?}")));
        }
        meta.input_shape = input_shape.to_vec();
        meta.architecture = layers.iter().map(Layer::describe).collect::<Vec<_>>().join(", ");
        meta.operations =
            layers.iter().map(|l| OperationInfo { name: l.name().to_string(), ring_only: l.is_ring_only() }).collect();
        if layers.iter().any(|l| l.params().iter().any(|p| p.iter().any(|v| !v.is_finite()))) {
            return Err(Error::InvalidModel("non-finite weight".into()));
        }
        Ok(Model { meta, layers, output_len: shape[0] })
    }

    /// The metadata.
    pub fn meta(&self) -> &ModelMeta {
        &self.meta
    }

    /// Mutable metadata (e.g. to record metrics before saving).
    pub fn meta_mut(&mut self) -> &mut ModelMeta {
        &mut self.meta
    }

    /// The layers.
    pub fn layers(&self) -> &[Layer] {
        &self.layers
    }

    /// Input shape without the batch axis, e.g. `[1, 28, 28]`.
    pub fn input_shape(&self) -> &[usize] {
        &self.meta.input_shape
    }

    /// Number of outputs per sample.
    pub fn output_len(&self) -> usize {
        self.output_len
    }

    /// Whether every operation is ring-only (the model would run under any homomorphic scheme).
    pub fn is_ring_only(&self) -> bool {
        self.layers.iter().all(Layer::is_ring_only)
    }

    /// Multiply-adds per sample of the linear layers.
    pub fn multiply_adds(&self) -> usize {
        let mut shape = self.meta.input_shape.clone();
        let mut total = 0;
        for l in &self.layers {
            let out = l.output_shape(&shape).expect("checked in new");
            total += l.spec().multiply_adds(&out);
            shape = out;
        }
        total
    }

    fn check_input(&self, shape: &[usize]) -> Result<()> {
        if shape.len() != self.meta.input_shape.len() + 1 || shape[0] == 0 || shape[1..] != self.meta.input_shape[..] {
            let mut want = String::from("[N");
            for d in &self.meta.input_shape {
                want.push_str(&format!(", {d}"));
            }
            want.push(']');
            return Err(Error::shape("model input", want, shape));
        }
        Ok(())
    }

    /// Runs the layers, refusing a non-finite value after any of them: a later layer could hide it
    /// (`max(NaN, 0)` is `0` in ReLU and max pooling, so an overflow would turn into a finite, wrong answer).
    fn run(&self, mut batch: Batch) -> Result<Batch> {
        for layer in &self.layers {
            batch = layer.infer(batch)?;
            if batch.data.iter().any(|v| !v.is_finite()) {
                return Err(Error::NonFinite("an intermediate value (overflow)"));
            }
        }
        Ok(batch)
    }

    /// `x: [N, ...input_shape] -> [N, output_len]`, in chunks of [`CHUNK_ROWS`] samples.
    pub fn forward_plain(&self, x: ArrayViewD<'_, f32>) -> Result<ArrayD<f32>> {
        self.check_input(x.shape())?;
        let n = x.shape()[0];
        let mut outs = Vec::with_capacity(n.div_ceil(CHUNK_ROWS));
        for start in (0..n).step_by(CHUNK_ROWS) {
            let part = x.slice_axis(Axis(0), (start..(start + CHUNK_ROWS).min(n)).into());
            let out = self.run(Batch { data: part.to_owned(), planes: 1 })?;
            if out.data.iter().any(|v| !v.is_finite()) {
                return Err(Error::NonFinite("forward_plain"));
            }
            outs.push(out.data);
        }
        join(outs, Axis(0))
    }

    /// Encrypted inference `[4, N, ...input_shape] -> [4, N, output_len]` in the default form,
    /// [`EncryptedForm::Coefficients`] (see [`Self::forward_encrypted_in`]).
    pub fn forward_encrypted(&self, x: &EncryptedTensor<f32>) -> Result<EncryptedTensor<f32>> {
        self.forward_encrypted_in(x, EncryptedForm::default())
    }

    /// Encrypted inference `[4, N, ...input_shape] -> [4, N, output_len]`, the answer in the same
    /// four-plane wire layout whichever `form` computes it:
    ///
    /// - [`EncryptedForm::Coefficients`]: each sample converted to its two coefficient planes `(α, β)`
    ///   (key-free, but it **uses the 2x2 structure**: see [`crate::coefficient`]), the layers run on them
    ///   stacked as one batch of `2n` rows (chunks of `CHUNK_ROWS / 2` samples), and the output converted
    ///   back with each sample's own reference. Inputs that are not ciphertexts of one key per sample,
    ///   or not finite, are refused.
    /// - [`EncryptedForm::FourPlanes`]: the layers run on the four planes stacked as one batch of `4n`
    ///   rows (chunks of `CHUNK_ROWS / 4` samples); only the layers that use the 2x2 structure read it.
    pub fn forward_encrypted_in(&self, x: &EncryptedTensor<f32>, form: EncryptedForm) -> Result<EncryptedTensor<f32>> {
        self.check_input(x.shape())?;
        let n = x.shape()[0];
        let per = (CHUNK_ROWS / form.planes()).max(1);
        let values = self.meta.input_shape.iter().product::<usize>();
        let mut outs = Vec::with_capacity(n.div_ceil(per));
        for start in (0..n).step_by(per) {
            let len = per.min(n - start);
            let mut stacked = vec![form.planes() * len];
            stacked.extend_from_slice(&self.meta.input_shape);
            let out = match form {
                EncryptedForm::Coefficients => {
                    let (coefficients, refs) = coefficient::to_coefficients(x, start..start + len)?;
                    debug_assert_eq!(coefficients.len(), 2 * len * values);
                    let data = ArrayD::from_shape_vec(IxDyn(&stacked), coefficients).expect("sizes match");
                    let out = self.run(Batch { data, planes: 2 })?;
                    let out = out.data.as_standard_layout();
                    let flat = out.as_slice().expect("standard layout");
                    if flat.iter().any(|v| !v.is_finite()) {
                        return Err(Error::NonFinite("forward_encrypted"));
                    }
                    let planes = coefficient::from_coefficients(flat, &refs, self.output_len);
                    ArrayD::from_shape_vec(IxDyn(&[4, len, self.output_len]), planes).expect("sizes match")
                }
                EncryptedForm::FourPlanes => {
                    let part = if len == n {
                        x.data().clone()
                    } else {
                        x.data().slice_axis(Axis(1), (start..start + len).into()).as_standard_layout().into_owned()
                    };
                    let data = part.into_shape_with_order(IxDyn(&stacked)).expect("standard layout");
                    let out = self.run(Batch { data, planes: 4 })?;
                    if out.data.iter().any(|v| !v.is_finite()) {
                        return Err(Error::NonFinite("forward_encrypted"));
                    }
                    out.data.into_shape_with_order(IxDyn(&[4, len, self.output_len])).expect("sizes match")
                }
            };
            outs.push(out);
        }
        Ok(EncryptedTensor::from_data(join(outs, Axis(1))?)?)
    }

    /// Serialises to the model file format (see the module docs).
    pub fn to_bytes(&self) -> Vec<u8> {
        let header = Header { meta: self.meta.clone(), layers: self.layers.iter().map(Layer::spec).collect() };
        let json = serde_json::to_vec(&header).expect("metadata serialises");
        let mut weights = Vec::new();
        for layer in &self.layers {
            for p in layer.params() {
                for v in p.iter() {
                    weights.extend_from_slice(&v.to_le_bytes());
                }
            }
        }
        frame(&json, &weights)
    }

    /// Parses and validates a model file.
    pub fn from_bytes(bytes: &[u8]) -> Result<Model> {
        let bad = |m: String| Error::ModelFile(m);
        if bytes.len() > MAX_FILE_BYTES {
            return Err(bad(format!("{} bytes exceeds the limit of {MAX_FILE_BYTES}", bytes.len())));
        }
        if bytes.len() < 16 {
            return Err(bad(format!("too short ({} bytes)", bytes.len())));
        }
        if &bytes[..6] != b"MORENN" {
            return Err(bad("not a model file (wrong magic)".into()));
        }
        if &bytes[..8] != MAGIC {
            return Err(bad(format!("unsupported version {:?}", String::from_utf8_lossy(&bytes[6..8]))));
        }
        let (body, crc) = bytes.split_at(bytes.len() - 4);
        let stored = u32::from_le_bytes(crc.try_into().expect("4 bytes"));
        let actual = crc32fast::hash(body);
        if stored != actual {
            return Err(bad(format!(
                "checksum mismatch (stored {stored:08x}, computed {actual:08x}): file is corrupt"
            )));
        }
        let json_len = u32::from_le_bytes(body[8..12].try_into().expect("4 bytes")) as usize;
        let json_end =
            json_len.checked_add(12).filter(|&e| e <= body.len()).ok_or_else(|| bad("truncated metadata".into()))?;
        let json = &body[12..json_end];
        let header: Header = serde_json::from_slice(json).map_err(|e| bad(format!("metadata: {e}")))?;
        let mut weights = &body[json_end..];
        let mut layers = Vec::with_capacity(header.layers.len());
        for spec in &header.layers {
            let mut params = Vec::new();
            for shape in spec.param_shapes() {
                let count = shape
                    .iter()
                    .try_fold(1usize, |a, &d| a.checked_mul(d))
                    .filter(|&c| c.checked_mul(4).is_some_and(|b| b <= weights.len()))
                    .ok_or_else(|| bad(format!("weights truncated at layer {spec:?}")))?;
                let (chunk, rest) = weights.split_at(count * 4);
                weights = rest;
                let values: Vec<f32> =
                    chunk.chunks_exact(4).map(|c| f32::from_le_bytes(c.try_into().expect("4 bytes"))).collect();
                // ndarray also refuses shapes whose non-zero dimensions multiply past `isize::MAX`, even
                // when another dimension is 0.
                let param = ArrayD::from_shape_vec(IxDyn(&shape), values)
                    .map_err(|e| bad(format!("parameter shape {shape:?} at layer {spec:?}: {e}")))?;
                params.push(param);
            }
            layers.push(spec.build(params).map_err(|e| bad(e.to_string()))?);
        }
        if !weights.is_empty() {
            return Err(bad(format!("{} unexpected trailing bytes", weights.len())));
        }
        let input_shape = header.meta.input_shape.clone();
        Model::new(header.meta, &input_shape, layers).map_err(|e| bad(e.to_string()))
    }

    /// Reads and validates a model file.
    pub fn load(path: impl AsRef<Path>) -> Result<Model> {
        let path = path.as_ref();
        let bytes = std::fs::read(path).map_err(|source| Error::Io { path: path.display().to_string(), source })?;
        Model::from_bytes(&bytes).map_err(|e| match e {
            Error::ModelFile(m) => Error::ModelFile(format!("{}: {m}", path.display())),
            other => other,
        })
    }

    /// Writes the model file.
    pub fn save(&self, path: impl AsRef<Path>) -> Result<()> {
        let path = path.as_ref();
        std::fs::write(path, self.to_bytes()).map_err(|source| Error::Io { path: path.display().to_string(), source })
    }
}

/// The model file around a JSON header and the weight bytes: magic, header length (u32 LE), header,
/// weights, CRC-32 of all that (LE). [`Model::to_bytes`] writes its files with it; tests use it to build
/// hostile files that pass the checksum.
pub fn frame(header_json: &[u8], weights: &[u8]) -> Vec<u8> {
    let mut out = Vec::with_capacity(16 + header_json.len() + weights.len());
    out.extend_from_slice(MAGIC);
    out.extend_from_slice(&(header_json.len() as u32).to_le_bytes());
    out.extend_from_slice(header_json);
    out.extend_from_slice(weights);
    let crc = crc32fast::hash(&out);
    out.extend_from_slice(&crc.to_le_bytes());
    out
}
