//! The whole-body circulation model in the page: the real 0D simulation (`more-hemo`) run live, next to the
//! server's encrypted surrogate prediction. Plain physiology, no cryptography.

use more_hemo::{OUTPUT_NAMES, OUTPUT_UNITS, PARAMETERS, PatientParams};
use wasm_bindgen::prelude::*;

use crate::js_err;

/// Names of the patient parameters, in the order the model and the surrogate take them.
#[wasm_bindgen(js_name = wbcParameterNames)]
pub fn wbc_parameter_names() -> Vec<String> {
    PARAMETERS.iter().map(|p| p.name.to_string()).collect()
}

/// Human-readable labels of the parameters, with units, e.g. "Heart rate (bpm)".
#[wasm_bindgen(js_name = wbcParameterLabels)]
pub fn wbc_parameter_labels() -> Vec<String> {
    PARAMETERS.iter().map(|p| format!("{} ({})", p.label, p.unit)).collect()
}

/// `[min, max, default]` of every parameter, flattened (3 numbers per parameter).
#[wasm_bindgen(js_name = wbcParameterRanges)]
pub fn wbc_parameter_ranges() -> Vec<f64> {
    PARAMETERS.iter().flat_map(|p| [p.min, p.max, p.default]).collect()
}

/// Names of the outputs, in the surrogate's output order.
#[wasm_bindgen(js_name = wbcOutputNames)]
pub fn wbc_output_names() -> Vec<String> {
    OUTPUT_NAMES.iter().map(|s| s.to_string()).collect()
}

/// Units of the outputs.
#[wasm_bindgen(js_name = wbcOutputUnits)]
pub fn wbc_output_units() -> Vec<String> {
    OUTPUT_UNITS.iter().map(|s| s.to_string()).collect()
}

/// One simulation at periodic steady state: outputs and the final beat's waveforms.
#[wasm_bindgen(js_name = WbcSimulation)]
pub struct WbcSimulation(more_hemo::Simulation);

#[wasm_bindgen(js_class = WbcSimulation)]
impl WbcSimulation {
    /// The six outputs in [`wbc_output_names`] order.
    pub fn outputs(&self) -> Vec<f64> {
        self.0.outputs.to_array().to_vec()
    }
    /// Beats simulated until periodic steady state.
    pub fn beats(&self) -> usize {
        self.0.beats
    }
    /// Sample times of the final beat (s).
    pub fn time(&self) -> Vec<f64> {
        self.0.waveforms.time.clone()
    }
    /// Aortic pressure over the final beat (mmHg).
    #[wasm_bindgen(js_name = aorticPressure)]
    pub fn aortic_pressure(&self) -> Vec<f64> {
        self.0.waveforms.aortic_pressure.clone()
    }
    /// Left-ventricular pressure over the final beat (mmHg).
    #[wasm_bindgen(js_name = lvPressure)]
    pub fn lv_pressure(&self) -> Vec<f64> {
        self.0.waveforms.lv_pressure.clone()
    }
    /// Left-ventricular volume over the final beat (mL).
    #[wasm_bindgen(js_name = lvVolume)]
    pub fn lv_volume(&self) -> Vec<f64> {
        self.0.waveforms.lv_volume.clone()
    }
}

/// Simulates a patient (parameters in [`wbc_parameter_names`] order) to periodic steady state.
/// Throws if a value is outside its range.
#[wasm_bindgen(js_name = wbcSimulate)]
pub fn wbc_simulate(params: &[f64]) -> Result<WbcSimulation, JsError> {
    let p = PatientParams::from_slice(params).map_err(|e| js_err("circulation model", e))?;
    more_hemo::simulate(&p).map(WbcSimulation).map_err(|e| js_err("circulation model", e))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parameters_and_simulation_line_up() {
        let names = wbc_parameter_names();
        let ranges = wbc_parameter_ranges();
        assert_eq!(ranges.len(), 3 * names.len());
        assert_eq!(wbc_parameter_labels().len(), names.len());
        let defaults: Vec<f64> = ranges.chunks(3).map(|r| r[2]).collect();
        let sim = wbc_simulate(&defaults).map_err(|_| "simulation failed").unwrap();
        let out = sim.outputs();
        assert_eq!(out.len(), wbc_output_names().len());
        assert_eq!(wbc_output_units().len(), out.len());
        assert!(out[0] > out[1], "systolic above diastolic");
        let t = sim.time();
        assert_eq!(sim.aortic_pressure().len(), t.len());
        assert_eq!(sim.lv_pressure().len(), t.len());
        assert_eq!(sim.lv_volume().len(), t.len());
        assert!(sim.beats() > 3);
    }
}
