//! A closed-loop lumped-parameter (0D) model of the whole-body circulation.
//!
//! Four heart chambers with time-varying elastance, four valves (smoothed diodes), and systemic and
//! pulmonary arteries and veins as resistance–compliance–inertance compartments, after Regazzoni et al.
//! 2022 (J Comput Phys 457:111083), with elements of Korakianitis & Shi 2006 and Smith et al. 2004; see
//! `docs/wbc.md` for the equations, the parameter values and their sources. The model is integrated with
//! a fixed-step RK4 until periodic steady state, and reports the clinical outputs of the last beat.
//!
//! ```
//! use more_hemo::{PatientParams, simulate};
//! let sim = simulate(&PatientParams::default()).unwrap();
//! let o = sim.outputs;
//! assert!(o.systolic_pressure > o.diastolic_pressure);
//! ```

pub mod dataset;
pub mod error;
pub mod model;
pub mod params;
pub mod plot;
pub mod simulate;
pub mod surrogate;

pub use dataset::{Dataset, N_OUTPUTS, generate, latin_hypercube};
pub use error::{Error, Result};
pub use params::{Circuit, N_PARAMS, PARAMETERS, ParamSpec, PatientParams};
pub use simulate::{OUTPUT_NAMES, OUTPUT_UNITS, Outputs, SimOptions, Simulation, Waveforms, simulate, simulate_with};
