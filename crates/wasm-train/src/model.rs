//! A trained plaintext model in the page: the one decrypted from the server's encrypted model, or the one
//! trained here on plaintext. Predictions, accuracy on labelled digits, its weights, and its model file
//! (to hand it to a worker or save it).

use more_nn::Model;
use wasm_bindgen::prelude::*;

use crate::mnist::MnistSamples;
use crate::{Fault, fault, rows_array};

/// A trained model (plaintext weights, in the page only).
#[wasm_bindgen]
#[derive(Debug, Clone)]
pub struct TrainedModel {
    model: Model,
}

impl TrainedModel {
    /// Wraps a model.
    pub fn new(model: Model) -> Self {
        TrainedModel { model }
    }

    /// The model.
    pub fn model(&self) -> &Model {
        &self.model
    }

    /// Outputs `[N, outputs]` for inputs of the model's input shape, as an array.
    pub fn outputs(&self, inputs: &[f32]) -> Result<ndarray::ArrayD<f32>, Fault> {
        let x = rows_array("inputs", inputs, self.model.input_shape())?;
        self.model.forward_plain(x.view()).map_err(|e| fault("prediction", e))
    }
}

#[wasm_bindgen]
impl TrainedModel {
    /// Parses a model file (`.morenn`).
    #[wasm_bindgen(js_name = fromBytes)]
    pub fn from_bytes(bytes: &[u8]) -> Result<TrainedModel, Fault> {
        Model::from_bytes(bytes).map(TrainedModel::new).map_err(|e| fault("not a model file", e))
    }

    /// The model file (`.morenn`).
    #[wasm_bindgen(js_name = toBytes)]
    pub fn to_bytes(&self) -> Vec<u8> {
        self.model.to_bytes()
    }

    /// Outputs, row-major `[N, outputs]`, for inputs row-major `[N, ...input shape]`.
    pub fn predict(&self, inputs: &[f32]) -> Result<Vec<f32>, Fault> {
        Ok(self.outputs(inputs)?.into_iter().collect())
    }

    /// The classes the model gives `samples` and its accuracy on them, from one forward pass.
    pub fn classify(&self, samples: &MnistSamples) -> Result<Classification, Fault> {
        let out = self.outputs(&samples.inputs())?;
        let accuracy = more_nn::metrics::accuracy(&out, &samples.targets_array());
        let classes = more_nn::metrics::predictions(&out).into_iter().map(|c| c as u32).collect();
        Ok(Classification { classes, accuracy })
    }

    /// Every parameter, in the model's order, flattened.
    pub fn weights(&self) -> Vec<f32> {
        self.model.layers().iter().flat_map(|l| l.weights()).flat_map(|p| p.iter().copied()).collect()
    }
}

/// A model's answers on labelled samples ([`TrainedModel::classify`]).
#[wasm_bindgen]
#[derive(Debug, Clone, PartialEq)]
pub struct Classification {
    classes: Vec<u32>,
    accuracy: f64,
}

#[wasm_bindgen]
impl Classification {
    /// The predicted class of every sample (argmax of the outputs).
    pub fn classes(&self) -> Vec<u32> {
        self.classes.clone()
    }

    /// Share of the samples whose predicted class is their label.
    pub fn accuracy(&self) -> f64 {
        self.accuracy
    }

    /// Share of the samples on which `other` predicts the same class (0 when the counts differ).
    pub fn agreement(&self, other: &Classification) -> f64 {
        if self.classes.len() != other.classes.len() || self.classes.is_empty() {
            return 0.0;
        }
        let same = self.classes.iter().zip(&other.classes).filter(|(a, b)| a == b).count();
        same as f64 / self.classes.len() as f64
    }
}
