//! Engine-agnostic pieces of the regression surrogate: input normalisation and output scaling (the
//! `Preprocessing.mean/std/output_scale/output_offset` of the model file), and per-output error metrics.

use serde::Serialize;

use crate::dataset::{Dataset, N_OUTPUTS};
use crate::params::N_PARAMS;

/// Affine maps between physical units and the network's inputs and targets:
/// `x_net = (x − input_mean) / input_std` and `y = y_net · output_scale + output_offset`.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Scaling {
    /// Mean of each input over the training set.
    pub input_mean: [f64; N_PARAMS],
    /// Standard deviation of each input over the training set.
    pub input_std: [f64; N_PARAMS],
    /// Added to the network's output (the training mean of each output).
    pub output_offset: [f64; N_OUTPUTS],
    /// Multiplies the network's output (the training standard deviation of each output).
    pub output_scale: [f64; N_OUTPUTS],
}

fn mean_std<const K: usize>(rows: &[[f64; K]]) -> ([f64; K], [f64; K]) {
    let n = rows.len().max(1) as f64;
    let mut mean = [0.0; K];
    for r in rows {
        for k in 0..K {
            mean[k] += r[k] / n;
        }
    }
    let mut std = [0.0; K];
    for r in rows {
        for k in 0..K {
            std[k] += (r[k] - mean[k]).powi(2) / n;
        }
    }
    for s in &mut std {
        *s = s.sqrt().max(1e-12);
    }
    (mean, std)
}

impl Scaling {
    /// Standardises inputs and outputs with the statistics of `train`.
    pub fn fit(train: &Dataset) -> Self {
        let (input_mean, input_std) = mean_std(&train.inputs);
        let (output_offset, output_scale) = mean_std(&train.outputs);
        Self { input_mean, input_std, output_offset, output_scale }
    }

    /// Network inputs, row-major `[N, N_PARAMS]`.
    pub fn inputs(&self, d: &Dataset) -> Vec<f32> {
        d.inputs
            .iter()
            .flat_map(|r| (0..N_PARAMS).map(move |k| ((r[k] - self.input_mean[k]) / self.input_std[k]) as f32))
            .collect()
    }

    /// Network targets, row-major `[N, N_OUTPUTS]`.
    pub fn targets(&self, d: &Dataset) -> Vec<f32> {
        d.outputs
            .iter()
            .flat_map(|r| (0..N_OUTPUTS).map(move |k| ((r[k] - self.output_offset[k]) / self.output_scale[k]) as f32))
            .collect()
    }

    /// Physical outputs from network outputs (row-major `[N, N_OUTPUTS]`).
    pub fn outputs(&self, y: &[f32]) -> Vec<[f64; N_OUTPUTS]> {
        y.chunks_exact(N_OUTPUTS)
            .map(|r| std::array::from_fn(|k| r[k] as f64 * self.output_scale[k] + self.output_offset[k]))
            .collect()
    }
}

/// Per-output errors of predictions against the simulated truth.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct ErrorTable {
    /// Mean absolute error, in the output's unit.
    pub mean_abs: [f64; N_OUTPUTS],
    /// Mean relative error `|pred − true| / |true|` (a fraction, not %).
    pub mean_rel: [f64; N_OUTPUTS],
    /// Largest relative error.
    pub max_rel: [f64; N_OUTPUTS],
    /// Number of samples.
    pub n: usize,
}

/// Errors of `pred` against `truth` (same length).
pub fn errors(pred: &[[f64; N_OUTPUTS]], truth: &[[f64; N_OUTPUTS]]) -> ErrorTable {
    let n = pred.len().min(truth.len());
    let mut t = ErrorTable { mean_abs: [0.0; N_OUTPUTS], mean_rel: [0.0; N_OUTPUTS], max_rel: [0.0; N_OUTPUTS], n };
    for (p, y) in pred.iter().zip(truth) {
        for k in 0..N_OUTPUTS {
            let a = (p[k] - y[k]).abs();
            let r = a / y[k].abs().max(1e-12);
            t.mean_abs[k] += a / n as f64;
            t.mean_rel[k] += r / n as f64;
            t.max_rel[k] = t.max_rel[k].max(r);
        }
    }
    t
}
