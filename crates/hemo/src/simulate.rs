//! Integration to periodic steady state, and the clinical outputs of the last beat.

use serde::Serialize;

use crate::error::{Error, Result};
use crate::model::{N_STATE, State, idx};
use crate::params::{Circuit, PatientParams};

/// Integration and convergence options.
#[derive(Debug, Clone, Copy, PartialEq, Serialize)]
pub struct SimOptions {
    /// Fixed Runge–Kutta (RK4) steps per heart beat. The fastest mode of the circuit (an open valve
    /// between a contracting ventricle and the aorta, `λ ≈ E_max / R_open ≈ 700 s⁻¹` at the top of the
    /// ranges) needs `h·λ < 2.78`; 1000 steps per beat gives `h·λ < 0.9` at 50 bpm.
    pub steps_per_beat: usize,
    /// Periodic steady state: every state variable changes between the starts of consecutive beats by less
    /// than `tolerance` relative to `max(|x|, 1)` (mL, mL/s).
    pub tolerance: f64,
    /// Beats after which a run that has not converged is an error.
    pub max_beats: usize,
    /// Number of points per waveform of the final beat.
    pub waveform_points: usize,
}

impl Default for SimOptions {
    fn default() -> Self {
        Self { steps_per_beat: 1000, tolerance: 1e-4, max_beats: 1000, waveform_points: 200 }
    }
}

/// Names of the surrogate's outputs, in the order of [`Outputs::to_array`].
pub const OUTPUT_NAMES: [&str; 6] = [
    "systolic_pressure",
    "diastolic_pressure",
    "mean_pressure",
    "stroke_volume",
    "cardiac_output",
    "ejection_fraction",
];

/// Units of the outputs, in the order of [`OUTPUT_NAMES`].
pub const OUTPUT_UNITS: [&str; 6] = ["mmHg", "mmHg", "mmHg", "mL", "L/min", "%"];

/// Clinical outputs of one simulation at periodic steady state (the last beat).
#[derive(Debug, Clone, Copy, PartialEq, Serialize)]
pub struct Outputs {
    /// Systolic (maximum) aortic pressure (mmHg).
    pub systolic_pressure: f64,
    /// Diastolic (minimum) aortic pressure (mmHg).
    pub diastolic_pressure: f64,
    /// Mean aortic pressure over the beat (mmHg).
    pub mean_pressure: f64,
    /// Stroke volume, end-diastolic minus end-systolic LV volume (mL).
    pub stroke_volume: f64,
    /// Cardiac output, stroke volume × heart rate (L/min).
    pub cardiac_output: f64,
    /// Ejection fraction, stroke volume / end-diastolic volume (%).
    pub ejection_fraction: f64,
    /// LV end-diastolic volume (mL).
    pub end_diastolic_volume: f64,
    /// LV end-systolic volume (mL).
    pub end_systolic_volume: f64,
    /// Mean right-atrial (central venous) pressure (mmHg).
    pub central_venous_pressure: f64,
    /// Mean pulmonary arterial pressure (mmHg).
    pub pulmonary_pressure: f64,
}

impl Outputs {
    /// The six surrogate outputs in the order of [`OUTPUT_NAMES`].
    pub fn to_array(&self) -> [f64; 6] {
        [
            self.systolic_pressure,
            self.diastolic_pressure,
            self.mean_pressure,
            self.stroke_volume,
            self.cardiac_output,
            self.ejection_fraction,
        ]
    }
}

/// Waveforms of the final beat, sampled uniformly in time.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Waveforms {
    /// Time since the start of the beat (s).
    pub time: Vec<f64>,
    /// Aortic (systemic arterial) pressure (mmHg).
    pub aortic_pressure: Vec<f64>,
    /// Left-ventricular pressure (mmHg).
    pub lv_pressure: Vec<f64>,
    /// Left-atrial pressure (mmHg).
    pub la_pressure: Vec<f64>,
    /// Left-ventricular volume (mL).
    pub lv_volume: Vec<f64>,
    /// Pulmonary arterial pressure (mmHg).
    pub pulmonary_pressure: Vec<f64>,
    /// Right-ventricular pressure (mmHg).
    pub rv_pressure: Vec<f64>,
    /// Aortic valve flow (mL/s).
    pub aortic_flow: Vec<f64>,
}

/// One simulation: outputs, waveforms and how the run went.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Simulation {
    /// The patient.
    pub params: PatientParams,
    /// Clinical outputs of the final beat.
    pub outputs: Outputs,
    /// Waveforms of the final beat.
    pub waveforms: Waveforms,
    /// Beats simulated (including the final, measured one).
    pub beats: usize,
    /// Beat-to-beat relative change at convergence.
    pub periodicity_error: f64,
    /// Largest |total volume − initial total volume| over the run (mL).
    pub volume_drift: f64,
}

/// One classic Runge–Kutta step.
fn rk4_step(c: &Circuit, t: f64, x: &State, h: f64) -> State {
    let add = |a: &State, b: &State, s: f64| {
        let mut r = *a;
        for i in 0..N_STATE {
            r[i] += s * b[i];
        }
        r
    };
    let k1 = c.rhs(t, x);
    let k2 = c.rhs(t + 0.5 * h, &add(x, &k1, 0.5 * h));
    let k3 = c.rhs(t + 0.5 * h, &add(x, &k2, 0.5 * h));
    let k4 = c.rhs(t + h, &add(x, &k3, h));
    let mut r = *x;
    for i in 0..N_STATE {
        r[i] += h / 6.0 * (k1[i] + 2.0 * k2[i] + 2.0 * k3[i] + k4[i]);
    }
    r
}

fn relative_change(a: &State, b: &State) -> f64 {
    a.iter().zip(b).map(|(x, y)| (x - y).abs() / x.abs().max(y.abs()).max(1.0)).fold(0.0, f64::max)
}

/// Simulates a patient to periodic steady state with default options.
pub fn simulate(params: &PatientParams) -> Result<Simulation> {
    simulate_with(params, &SimOptions::default())
}

/// Simulates a patient to periodic steady state.
pub fn simulate_with(params: &PatientParams, opts: &SimOptions) -> Result<Simulation> {
    params.validate()?;
    if opts.steps_per_beat < 100 || opts.waveform_points < 2 || opts.max_beats < 3 {
        return Err(Error::InvalidOption(
            "steps_per_beat >= 100, waveform_points >= 2 and max_beats >= 3 are required".into(),
        ));
    }
    if opts.tolerance.is_nan() || opts.tolerance <= 0.0 {
        return Err(Error::InvalidOption("tolerance must be positive".into()));
    }
    let c = Circuit::new(params);
    let n = opts.steps_per_beat;
    let h = c.period / n as f64;
    let mut x = c.initial_state();
    let v_total = Circuit::total_volume(&x);
    let mut drift: f64 = 0.0;
    let mut beats = 0;
    let mut change = f64::INFINITY;
    // Transient beats until the state at the start of a beat repeats.
    while beats + 1 < opts.max_beats {
        let start = x;
        for k in 0..n {
            x = rk4_step(&c, k as f64 * h, &x, h);
        }
        beats += 1;
        if !x.iter().all(|v| v.is_finite()) {
            return Err(Error::Diverged { time: beats as f64 * c.period });
        }
        drift = drift.max((Circuit::total_volume(&x) - v_total).abs());
        change = relative_change(&start, &x);
        if change < opts.tolerance && beats >= 3 {
            break;
        }
    }
    if change >= opts.tolerance {
        return Err(Error::NotPeriodic { beats, change });
    }
    // The measured beat.
    let stride = (n / opts.waveform_points).max(1);
    let mut w = Waveforms {
        time: Vec::new(),
        aortic_pressure: Vec::new(),
        lv_pressure: Vec::new(),
        la_pressure: Vec::new(),
        lv_volume: Vec::new(),
        pulmonary_pressure: Vec::new(),
        rv_pressure: Vec::new(),
        aortic_flow: Vec::new(),
    };
    let (mut p_max, mut p_min, mut p_sum) = (f64::NEG_INFINITY, f64::INFINITY, 0.0);
    let (mut v_max, mut v_min) = (f64::NEG_INFINITY, f64::INFINITY);
    let (mut ra_sum, mut pa_sum) = (0.0, 0.0);
    for k in 0..=n {
        let t = k as f64 * h;
        let d = c.derived(t, &x);
        if k < n {
            // Uniform samples of one period: their mean is the trapezoidal mean over the beat.
            p_sum += d.p_sa;
            ra_sum += d.p_ra;
            pa_sum += d.p_pa;
        }
        p_max = p_max.max(d.p_sa);
        p_min = p_min.min(d.p_sa);
        v_max = v_max.max(x[idx::V_LV]);
        v_min = v_min.min(x[idx::V_LV]);
        if k % stride == 0 {
            w.time.push(t);
            w.aortic_pressure.push(d.p_sa);
            w.lv_pressure.push(d.p_lv);
            w.la_pressure.push(d.p_la);
            w.lv_volume.push(x[idx::V_LV]);
            w.pulmonary_pressure.push(d.p_pa);
            w.rv_pressure.push(d.p_rv);
            w.aortic_flow.push(d.q_aortic);
        }
        if k < n {
            x = rk4_step(&c, t, &x, h);
            drift = drift.max((Circuit::total_volume(&x) - v_total).abs());
        }
    }
    beats += 1;
    if !x.iter().all(|v| v.is_finite()) {
        return Err(Error::Diverged { time: beats as f64 * c.period });
    }
    let sv = v_max - v_min;
    let outputs = Outputs {
        systolic_pressure: p_max,
        diastolic_pressure: p_min,
        mean_pressure: p_sum / n as f64,
        stroke_volume: sv,
        cardiac_output: sv * params.heart_rate / 1000.0,
        ejection_fraction: 100.0 * sv / v_max,
        end_diastolic_volume: v_max,
        end_systolic_volume: v_min,
        central_venous_pressure: ra_sum / n as f64,
        pulmonary_pressure: pa_sum / n as f64,
    };
    Ok(Simulation { params: *params, outputs, waveforms: w, beats, periodicity_error: change, volume_drift: drift })
}
