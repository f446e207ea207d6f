//! Patient parameters (the model's inputs) with physiological ranges, and the fixed circuit constants.

use serde::{Deserialize, Serialize};

use crate::error::{Error, Result};

/// Description of one patient parameter: name, unit, accepted range and default.
#[derive(Debug, Clone, Copy, PartialEq, Serialize)]
pub struct ParamSpec {
    /// Machine name (also the CLI flag and CSV column), e.g. `heart_rate`.
    pub name: &'static str,
    /// Human-readable label.
    pub label: &'static str,
    /// Unit, e.g. `bpm`.
    pub unit: &'static str,
    /// Lower bound of the physiological range (also the data-set sampling range).
    pub min: f64,
    /// Upper bound of the physiological range.
    pub max: f64,
    /// Default adult value.
    pub default: f64,
}

/// The patient parameters, in the order of [`PatientParams::to_array`] (the surrogate's input order).
pub const PARAMETERS: [ParamSpec; 7] = [
    ParamSpec { name: "heart_rate", label: "Heart rate", unit: "bpm", min: 50.0, max: 110.0, default: 75.0 },
    ParamSpec {
        name: "lv_contractility",
        label: "LV contractility (active elastance)",
        unit: "mmHg/mL",
        min: 1.5,
        max: 3.8,
        default: 2.6,
    },
    ParamSpec {
        name: "lv_stiffness",
        label: "LV diastolic stiffness (passive elastance)",
        unit: "mmHg/mL",
        min: 0.05,
        max: 0.15,
        default: 0.08,
    },
    ParamSpec {
        name: "rv_contractility",
        label: "RV contractility (active elastance)",
        unit: "mmHg/mL",
        min: 0.3,
        max: 0.9,
        default: 0.55,
    },
    ParamSpec {
        name: "systemic_resistance",
        label: "Systemic arterial resistance",
        unit: "mmHg·s/mL",
        min: 0.55,
        max: 1.15,
        default: 0.8,
    },
    ParamSpec {
        name: "arterial_compliance",
        label: "Systemic arterial compliance",
        unit: "mL/mmHg",
        min: 0.8,
        max: 1.8,
        default: 1.1,
    },
    ParamSpec {
        name: "blood_volume",
        label: "Total blood volume",
        unit: "mL",
        min: 4500.0,
        max: 5600.0,
        default: 5000.0,
    },
];

/// Number of patient parameters.
pub const N_PARAMS: usize = PARAMETERS.len();

/// The patient parameters of one simulation. Build with [`PatientParams::default`] and struct update syntax,
/// or from a vector with [`PatientParams::from_slice`]; [`PatientParams::validate`] checks the ranges.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct PatientParams {
    /// Heart rate (beats per minute).
    pub heart_rate: f64,
    /// Left-ventricular active elastance: end-systolic minus passive elastance (mmHg/mL).
    pub lv_contractility: f64,
    /// Left-ventricular passive (diastolic) elastance (mmHg/mL).
    pub lv_stiffness: f64,
    /// Right-ventricular active elastance (mmHg/mL).
    pub rv_contractility: f64,
    /// Systemic arterial (peripheral) resistance `R_AR,SYS` (mmHg·s/mL).
    pub systemic_resistance: f64,
    /// Systemic arterial compliance `C_AR,SYS` (mL/mmHg).
    pub arterial_compliance: f64,
    /// Total blood volume (mL), stressed plus unstressed.
    pub blood_volume: f64,
}

impl Default for PatientParams {
    fn default() -> Self {
        let d: Vec<f64> = PARAMETERS.iter().map(|p| p.default).collect();
        // The defaults are in range by construction.
        Self::from_array([d[0], d[1], d[2], d[3], d[4], d[5], d[6]])
    }
}

impl PatientParams {
    /// The parameters in the order of [`PARAMETERS`].
    pub fn to_array(&self) -> [f64; N_PARAMS] {
        [
            self.heart_rate,
            self.lv_contractility,
            self.lv_stiffness,
            self.rv_contractility,
            self.systemic_resistance,
            self.arterial_compliance,
            self.blood_volume,
        ]
    }

    /// Parameters from an array in the order of [`PARAMETERS`] (not validated).
    pub fn from_array(a: [f64; N_PARAMS]) -> Self {
        Self {
            heart_rate: a[0],
            lv_contractility: a[1],
            lv_stiffness: a[2],
            rv_contractility: a[3],
            systemic_resistance: a[4],
            arterial_compliance: a[5],
            blood_volume: a[6],
        }
    }

    /// Parameters from a slice in the order of [`PARAMETERS`], validated.
    pub fn from_slice(values: &[f64]) -> Result<Self> {
        let a: [f64; N_PARAMS] =
            values.try_into().map_err(|_| Error::WrongLength { expected: N_PARAMS, got: values.len() })?;
        let p = Self::from_array(a);
        p.validate()?;
        Ok(p)
    }

    /// Sets one parameter by name (not validated).
    pub fn set(&mut self, name: &str, value: f64) -> Result<()> {
        let i =
            PARAMETERS.iter().position(|p| p.name == name).ok_or_else(|| Error::UnknownParameter(name.to_string()))?;
        let mut a = self.to_array();
        a[i] = value;
        *self = Self::from_array(a);
        Ok(())
    }

    /// Checks that every parameter is finite and inside its range.
    pub fn validate(&self) -> Result<()> {
        for (spec, value) in PARAMETERS.iter().zip(self.to_array()) {
            if !(value.is_finite() && value >= spec.min && value <= spec.max) {
                return Err(Error::OutOfRange {
                    name: spec.name,
                    value,
                    min: spec.min,
                    max: spec.max,
                    unit: spec.unit,
                });
            }
        }
        Ok(())
    }
}

/// Elastance and timing of one heart chamber: `p = (E_pass + E_act·φ(t))·(V − V0)`.
#[derive(Debug, Clone, Copy, PartialEq, Serialize)]
pub struct Chamber {
    /// Active elastance amplitude (mmHg/mL).
    pub e_act: f64,
    /// Passive elastance (mmHg/mL).
    pub e_pass: f64,
    /// Rest (zero-pressure) volume (mL).
    pub v0: f64,
    /// Start of contraction within the beat (s).
    pub t_contract: f64,
    /// Duration of contraction (s).
    pub contraction: f64,
    /// Duration of relaxation (s), starting when contraction ends.
    pub relaxation: f64,
}

/// One vascular compartment: compliance, unstressed volume, and the resistance and inertance of its outflow.
#[derive(Debug, Clone, Copy, PartialEq, Serialize)]
pub struct Vessel {
    /// Compliance (mL/mmHg).
    pub compliance: f64,
    /// Unstressed volume (mL): `p = (V − V_u) / C`.
    pub unstressed: f64,
    /// Resistance of the outflow (mmHg·s/mL).
    pub resistance: f64,
    /// Inertance of the outflow (mmHg·s²/mL).
    pub inertance: f64,
}

/// All constants of one simulation: the circuit after applying the patient parameters.
#[derive(Debug, Clone, Copy, PartialEq, Serialize)]
pub struct Circuit {
    /// Heart period (s).
    pub period: f64,
    /// Left atrium.
    pub la: Chamber,
    /// Left ventricle.
    pub lv: Chamber,
    /// Right atrium.
    pub ra: Chamber,
    /// Right ventricle.
    pub rv: Chamber,
    /// Systemic arteries (outflow: systemic arterioles/capillaries).
    pub sys_art: Vessel,
    /// Systemic veins (outflow: into the right atrium).
    pub sys_ven: Vessel,
    /// Pulmonary arteries.
    pub pul_art: Vessel,
    /// Pulmonary veins (outflow: into the left atrium).
    pub pul_ven: Vessel,
    /// Open-valve resistance (mmHg·s/mL).
    pub valve_r_open: f64,
    /// Closed-valve resistance (mmHg·s/mL).
    pub valve_r_closed: f64,
    /// Width of the smooth open/closed transition (mmHg).
    pub valve_smoothing: f64,
    /// Total blood volume (mL).
    pub blood_volume: f64,
}

/// Reference heart period of the timing constants (s), i.e. 75 bpm (Regazzoni et al. 2022).
pub const REFERENCE_PERIOD: f64 = 0.8;

impl Circuit {
    /// The circuit for a patient. Constants not set by the patient come from Regazzoni et al. 2022 (see
    /// docs/wbc.md); activation durations scale with `sqrt(T / 0.8 s)` (Bazett-like), so systole takes a
    /// larger share of the beat at high heart rates.
    pub fn new(p: &PatientParams) -> Self {
        let period = 60.0 / p.heart_rate;
        let s = (period / REFERENCE_PERIOD).sqrt();
        let ventricle = |e_act: f64, e_pass: f64, v0: f64| Chamber {
            e_act,
            e_pass,
            v0,
            t_contract: 0.0,
            contraction: 0.34 * s,
            relaxation: 0.17 * s,
        };
        let atrium = |e_act: f64, e_pass: f64| Chamber {
            e_act,
            e_pass,
            v0: 4.0,
            // atrial systole starts 0.2 s (at 75 bpm) before the ventricular one: the PR interval
            t_contract: period - 0.2 * s,
            contraction: 0.17 * s,
            relaxation: 0.17 * s,
        };
        Self {
            period,
            la: atrium(0.07, 0.09),
            lv: ventricle(p.lv_contractility, p.lv_stiffness, 5.0),
            ra: atrium(0.06, 0.07),
            rv: ventricle(p.rv_contractility, 0.05, 10.0),
            sys_art: Vessel {
                compliance: p.arterial_compliance,
                unstressed: 700.0,
                resistance: p.systemic_resistance,
                inertance: 5e-3,
            },
            sys_ven: Vessel { compliance: 60.0, unstressed: SYS_VEN_UNSTRESSED, resistance: 0.26, inertance: 5e-4 },
            pul_art: Vessel { compliance: 10.0, unstressed: 150.0, resistance: 0.032, inertance: 5e-4 },
            pul_ven: Vessel { compliance: 16.0, unstressed: 350.0, resistance: 0.035, inertance: 5e-4 },
            valve_r_open: 0.0075,
            valve_r_closed: 75006.2,
            valve_smoothing: 0.5,
            blood_volume: p.blood_volume,
        }
    }
}

/// Unstressed volume of the systemic veins (mL), the venous reservoir.
pub const SYS_VEN_UNSTRESSED: f64 = 1400.0;
