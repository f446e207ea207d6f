//! Simulated patients for the training page: Latin-hypercube parameters ([`wbc_latin_hypercube`]), one
//! simulation of the whole-body circulation model per patient ([`wbc_simulate_outputs`], run by the page's
//! Web Workers, several at once), and the resulting table ([`WbcData`]): a seeded share held out, inputs
//! standardised and targets scaled with the training rows' statistics (`more_hemo::surrogate::Scaling`,
//! as `more train wbc` does), and the held-out errors of a trained model.

use more_hemo::surrogate::{Scaling, errors};
use more_hemo::{Dataset, N_OUTPUTS, N_PARAMS, OUTPUT_NAMES, OUTPUT_UNITS, PatientParams};
use serde::Serialize;
use wasm_bindgen::prelude::*;

use crate::model::TrainedModel;
use crate::{Fault, fault, to_js};

/// `n` patients' parameters, row-major `[n, 7]`: a Latin hypercube over the parameter ranges, deterministic
/// in `seed`.
#[wasm_bindgen(js_name = wbcLatinHypercube)]
pub fn wbc_latin_hypercube(n: usize, seed: u64) -> Vec<f64> {
    more_hemo::dataset::latin_hypercube(n, seed).into_iter().flatten().collect()
}

/// Parameters per patient.
#[wasm_bindgen(js_name = wbcParameterCount)]
pub fn wbc_parameter_count() -> usize {
    N_PARAMS
}

/// The six outputs of one patient (parameters in the model's order) at periodic steady state; throws when
/// the simulation does not converge or a value is out of range.
#[wasm_bindgen(js_name = wbcSimulateOutputs)]
pub fn wbc_simulate_outputs(params: &[f64]) -> Result<Vec<f64>, Fault> {
    let p = PatientParams::from_slice(params).map_err(|e| fault("patient parameters", e))?;
    let sim = more_hemo::simulate(&p).map_err(|e| fault("circulation model", e))?;
    Ok(sim.outputs.to_array().to_vec())
}

/// Largest patients file read (about 100,000 patients).
pub const MAX_CSV_BYTES: usize = 32 << 20;

/// A model's errors on the held-out patients, per output in the order of `names` (the page's result table).
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct HeldOutErrors {
    /// Output names.
    pub names: [&'static str; N_OUTPUTS],
    /// Output units.
    pub units: [&'static str; N_OUTPUTS],
    /// Held-out patients.
    pub n: usize,
    /// Mean absolute error, in the output's unit.
    pub mean_abs: [f64; N_OUTPUTS],
    /// Mean relative error (a fraction).
    pub mean_rel: [f64; N_OUTPUTS],
    /// Largest relative error (a fraction).
    pub max_rel: [f64; N_OUTPUTS],
    /// Mean of `mean_rel` over the outputs.
    pub mre: f64,
}

/// Simulated patients split into training and held-out rows.
#[wasm_bindgen]
#[derive(Debug, Clone)]
pub struct WbcData {
    train: Dataset,
    test: Dataset,
    scaling: Scaling,
}

impl WbcData {
    /// The training rows.
    pub fn train(&self) -> &Dataset {
        &self.train
    }

    /// Errors of `model` on the held-out rows ([`WbcData::errors`] before it becomes a JavaScript object).
    pub fn held_out_errors(&self, model: &TrainedModel) -> Result<HeldOutErrors, Fault> {
        let y = model.outputs(&self.held_out_inputs())?;
        let pred = self.scaling.outputs(y.as_slice().ok_or_else(|| Fault("non-contiguous output".into()))?);
        let t = errors(&pred, &self.test.outputs);
        let mre = t.mean_rel.iter().sum::<f64>() / N_OUTPUTS as f64;
        Ok(HeldOutErrors {
            names: OUTPUT_NAMES,
            units: OUTPUT_UNITS,
            n: t.n,
            mean_abs: t.mean_abs,
            mean_rel: t.mean_rel,
            max_rel: t.max_rel,
            mre,
        })
    }
}

#[wasm_bindgen]
impl WbcData {
    /// A table from the patients' parameters (row-major `[n, 7]`) and outputs (`[n, 6]`); rows whose
    /// outputs are not finite (a failed simulation) are left out. `held_out` of the rows (at least one),
    /// chosen by a shuffle seeded with `seed`, are kept aside for evaluation.
    #[wasm_bindgen(constructor)]
    pub fn new(params: &[f64], outputs: &[f64], held_out: f64, seed: u64) -> Result<WbcData, Fault> {
        if params.len() % N_PARAMS != 0 || outputs.len() % N_OUTPUTS != 0 {
            return Err(Fault(format!("{N_PARAMS} parameters and {N_OUTPUTS} outputs per patient needed")));
        }
        if params.len() / N_PARAMS != outputs.len() / N_OUTPUTS {
            return Err(Fault(format!(
                "{} patients' parameters but {} patients' outputs",
                params.len() / N_PARAMS,
                outputs.len() / N_OUTPUTS
            )));
        }
        if !(0.0..1.0).contains(&held_out) {
            return Err(Fault(format!("the held-out share must be in [0, 1), got {held_out}")));
        }
        let mut all = Dataset::default();
        for (x, y) in params.chunks_exact(N_PARAMS).zip(outputs.chunks_exact(N_OUTPUTS)) {
            if x.iter().chain(y).all(|v| v.is_finite()) {
                all.inputs.push(x.try_into().expect("7 values"));
                all.outputs.push(y.try_into().expect("6 values"));
            } else {
                all.failed += 1;
            }
        }
        if all.len() < 10 {
            return Err(Fault(format!("{} usable patients: at least 10 are needed", all.len())));
        }
        let (train_rows, test_rows) = more_nn::train::split_rows(all.len(), held_out, seed);
        let part = |rows: &[usize]| Dataset {
            inputs: rows.iter().map(|&i| all.inputs[i]).collect(),
            outputs: rows.iter().map(|&i| all.outputs[i]).collect(),
            failed: 0,
        };
        let (train, test) = (part(&train_rows), part(&test_rows));
        let scaling = Scaling::fit(&train);
        Ok(WbcData { train, test, scaling })
    }

    /// A table from a CSV file as `more wbc dataset --out FILE.csv` writes it (a header of the parameter and
    /// output names, then one patient per line), split like [`WbcData::new`]. Throws on another header, a
    /// bad number or a file over [`MAX_CSV_BYTES`].
    #[wasm_bindgen(js_name = fromCsv)]
    pub fn from_csv(text: &str, held_out: f64, seed: u64) -> Result<WbcData, Fault> {
        if text.len() > MAX_CSV_BYTES {
            return Err(Fault(format!("the CSV file is {} bytes, more than {MAX_CSV_BYTES}", text.len())));
        }
        let d = Dataset::read_csv(text.as_bytes()).map_err(|e| fault("patients file", e))?;
        let params: Vec<f64> = d.inputs.iter().flatten().copied().collect();
        let outputs: Vec<f64> = d.outputs.iter().flatten().copied().collect();
        WbcData::new(&params, &outputs, held_out, seed)
    }

    /// All patients (training rows first, then the held-out ones) as CSV, in the format
    /// [`WbcData::from_csv`] and `more train wbc --train-csv` read.
    #[wasm_bindgen(js_name = toCsv)]
    pub fn to_csv(&self) -> String {
        let all = Dataset {
            inputs: self.train.inputs.iter().chain(&self.test.inputs).copied().collect(),
            outputs: self.train.outputs.iter().chain(&self.test.outputs).copied().collect(),
            failed: 0,
        };
        let mut out = Vec::new();
        all.write_csv(&mut out).expect("writing to memory");
        String::from_utf8(out).expect("CSV is text")
    }

    /// Training rows.
    #[wasm_bindgen(js_name = trainRows)]
    pub fn train_rows(&self) -> usize {
        self.train.len()
    }

    /// Held-out rows.
    #[wasm_bindgen(js_name = heldOutRows)]
    pub fn held_out_rows(&self) -> usize {
        self.test.len()
    }

    /// Standardised training inputs, row-major `[train rows, 7]`.
    #[wasm_bindgen(js_name = trainInputs)]
    pub fn train_inputs(&self) -> Vec<f32> {
        self.scaling.inputs(&self.train)
    }

    /// Scaled training targets, row-major `[train rows, 6]`.
    #[wasm_bindgen(js_name = trainTargets)]
    pub fn train_targets(&self) -> Vec<f32> {
        self.scaling.targets(&self.train)
    }

    /// Standardised held-out inputs, row-major `[held-out rows, 7]`.
    #[wasm_bindgen(js_name = heldOutInputs)]
    pub fn held_out_inputs(&self) -> Vec<f32> {
        self.scaling.inputs(&self.test)
    }

    /// Errors of `model` on the held-out patients, in physical units, as an object ([`HeldOutErrors`]):
    /// `names`, `units`, `n`, `mean_abs`, `mean_rel` and `max_rel` per output (relative errors as
    /// fractions), and `mre` (their mean relative error).
    pub fn errors(&self, model: &TrainedModel) -> Result<JsValue, Fault> {
        to_js("held-out errors", &self.held_out_errors(model)?)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn patients_split_and_scale_and_bad_tables_are_refused() {
        let n = 12;
        let params = wbc_latin_hypercube(n, 3);
        assert_eq!(params.len(), n * N_PARAMS);
        let mut outputs = Vec::new();
        for row in params.chunks(N_PARAMS).take(2) {
            outputs.extend(wbc_simulate_outputs(row).unwrap());
        }
        // Stand-in outputs for the other rows keep the test fast; one failed row is dropped.
        for i in 2..n {
            outputs.extend((0..N_OUTPUTS).map(|k| if i == 5 { f64::NAN } else { 10.0 + (i * k) as f64 }));
        }
        let d = WbcData::new(&params, &outputs, 0.2, 1).unwrap();
        assert_eq!(d.train_rows() + d.held_out_rows(), n - 1);
        assert_eq!(d.held_out_rows(), 2);
        let x = d.train_inputs();
        assert_eq!(x.len(), d.train_rows() * N_PARAMS);
        let mean0 = x.iter().step_by(N_PARAMS).sum::<f32>() / d.train_rows() as f32;
        assert!(mean0.abs() < 1e-5, "standardised: {mean0}");
        assert!(WbcData::new(&params[..7], &outputs, 0.2, 1).unwrap_err().0.contains("patients"));
        assert!(WbcData::new(&params, &outputs, 1.0, 1).is_err());
        assert!(wbc_simulate_outputs(&[1.0; 3]).is_err());
        // Through CSV and back: the same patients (order: training rows, then held out).
        let csv = d.to_csv();
        assert_eq!(csv.lines().count(), 1 + n - 1);
        let again = WbcData::from_csv(&csv, 0.2, 1).unwrap();
        assert_eq!(again.train_rows() + again.held_out_rows(), n - 1);
        assert!(WbcData::from_csv("a,b\n1,2\n", 0.2, 1).unwrap_err().0.contains("header"));
        let header = csv.lines().next().unwrap();
        assert!(WbcData::from_csv(&format!("{header}\n1,2,x\n"), 0.2, 1).is_err());
    }
}
