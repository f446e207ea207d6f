//! "Use your own model": an ONNX network (exported by PyTorch, scikit-learn, Keras…) imported in the page
//! with `more-onnx` into a more-nn model file, which the page then uploads to the server
//! (`POST /api/v1/models`). The import is plain Rust: the file never leaves the page until the user uploads
//! the result — and then **the server sees the model**; only inputs and answers are encrypted.

use more_nn::{OutputKind, Preprocessing};
use serde::{Deserialize, Serialize};
use wasm_bindgen::prelude::*;

use crate::js_err;

/// What the page says about the model beyond the graph (JavaScript object, camelCase keys; every key
/// optional but `task`).
#[derive(Debug, Deserialize)]
#[serde(rename_all = "camelCase", default, deny_unknown_fields)]
struct Options {
    /// The id written in the file (the server gives the uploaded model its own).
    model_id: String,
    /// The task: `"mnist"`, `"angio"`…
    task: String,
    /// One sentence.
    description: String,
    /// The preprocessing kind (`"mnist-digit"`, `"angio-frame"`): how the page prepares an input.
    kind: String,
    /// `[height, width]` the page resizes to, if any.
    resize: Option<[usize; 2]>,
    /// `x · scale` first.
    scale: f32,
    /// Then `(x − mean) / std`: one value, or one per input value.
    mean: Vec<f32>,
    /// See `mean`.
    std: Vec<f32>,
    /// Class names.
    labels: Vec<String>,
    /// Regression outputs rather than class scores.
    regression: bool,
    /// The graph output to take, when the graph has several.
    output: Option<String>,
    /// Leave a final softmax out (the class is the same; the outputs are then logits).
    drop_softmax: bool,
}

impl Default for Options {
    fn default() -> Self {
        Options {
            model_id: "my-model".into(),
            task: String::new(),
            description: String::new(),
            kind: String::new(),
            resize: None,
            scale: 1.0,
            mean: vec![0.0],
            std: vec![1.0],
            labels: Vec::new(),
            regression: false,
            output: None,
            drop_softmax: false,
        }
    }
}

/// What the import read and did, for the page to show (camelCase keys).
#[derive(Debug, Serialize)]
#[serde(rename_all = "camelCase")]
struct Report {
    producer: String,
    opset: i64,
    ir_version: i64,
    input: String,
    output: String,
    operators: Vec<String>,
    folded: Vec<String>,
    dropped: Vec<String>,
    parameters: usize,
    input_shape: Vec<usize>,
    output_len: usize,
    output_kind: &'static str,
    architecture: String,
    /// Whether every layer runs with ring operations only (none reads the 2x2 structure).
    ring_only: bool,
    /// Whether BFV could evaluate the network, and if not why.
    bfv_ok: bool,
    bfv_reason: Option<String>,
    /// Size of the model file made.
    bytes: usize,
}

/// Imports an ONNX file (`bytes`) with `options` (`{task, modelId, kind, resize, scale, mean, std,
/// labels, regression, output, dropSoftmax}`) and returns `{model: Uint8Array (a .morenn file), report}`;
/// throws an `Error` naming what it refused (an operator it does not translate, a shape that does not fit).
#[wasm_bindgen(js_name = importOnnx)]
pub fn import_onnx(bytes: &[u8], options: JsValue) -> Result<JsValue, JsError> {
    let o: Options = serde_wasm_bindgen::from_value(options).map_err(|e| js_err("import options", e))?;
    if o.task.is_empty() {
        return Err(JsError::new("import options: a task is needed (e.g. \"mnist\")"));
    }
    let mut opts = more_onnx::ImportOptions::new(o.model_id, o.task);
    opts.description = o.description;
    opts.preprocessing = Preprocessing {
        kind: o.kind,
        resize: o.resize,
        scale: o.scale,
        mean: o.mean,
        std: o.std,
        output_scale: Vec::new(),
        output_offset: Vec::new(),
    };
    opts.preprocessing.normalization().map_err(|e| js_err("import options", e))?;
    opts.labels = o.labels;
    opts.regression = o.regression;
    opts.output = o.output;
    opts.drop_softmax = o.drop_softmax;
    let imported = more_onnx::import(bytes, &opts).map_err(|e| js_err("ONNX import", e))?;
    let (model, r) = (imported.model, imported.report);
    let file = model.to_bytes();
    let report = Report {
        producer: r.producer,
        opset: r.opset,
        ir_version: r.ir_version,
        input: r.input,
        output: r.output,
        operators: r.operators,
        folded: r.folded,
        dropped: r.dropped,
        parameters: r.parameters,
        input_shape: model.input_shape().to_vec(),
        output_len: model.output_len(),
        output_kind: match model.meta().output_kind {
            OutputKind::Logits => "logits",
            OutputKind::Probabilities => "probabilities",
            OutputKind::Values => "values",
        },
        architecture: model.meta().architecture.clone(),
        ring_only: model.is_ring_only(),
        bfv_ok: r.bfv.is_ok(),
        bfv_reason: r.bfv.err(),
        bytes: file.len(),
    };
    let out = js_sys::Object::new();
    let set = |k: &str, v: &JsValue| js_sys::Reflect::set(&out, &JsValue::from_str(k), v).map(|_| ());
    set("model", &js_sys::Uint8Array::from(file.as_slice()).into()).map_err(|_| JsError::new("building the answer"))?;
    let report = serde_wasm_bindgen::to_value(&report).map_err(|e| js_err("the import report", e))?;
    set("report", &report).map_err(|_| JsError::new("building the answer"))?;
    Ok(out.into())
}
