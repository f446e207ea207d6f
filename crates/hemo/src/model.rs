//! The closed-loop circuit: state, activation, valves and the right-hand side of the ODE system.
//!
//! Twelve state variables: the volumes of the four heart chambers and of the four vascular compartments
//! (systemic arteries and veins, pulmonary arteries and veins), and the flows through the four vascular
//! resistance–inertance elements. Every flow leaves one compartment and enters the next, so the sum of the
//! volume derivatives is exactly zero and total blood volume is an invariant of the ODE (Runge–Kutta methods
//! preserve linear invariants, so the integrator conserves it to round-off).

use std::f64::consts::PI;

use crate::params::{Chamber, Circuit, Vessel};

/// Index of each state variable in [`State`].
pub mod idx {
    /// Left-atrial volume (mL).
    pub const V_LA: usize = 0;
    /// Left-ventricular volume (mL).
    pub const V_LV: usize = 1;
    /// Right-atrial volume (mL).
    pub const V_RA: usize = 2;
    /// Right-ventricular volume (mL).
    pub const V_RV: usize = 3;
    /// Systemic arterial volume (mL).
    pub const V_SA: usize = 4;
    /// Systemic venous volume (mL).
    pub const V_SV: usize = 5;
    /// Pulmonary arterial volume (mL).
    pub const V_PA: usize = 6;
    /// Pulmonary venous volume (mL).
    pub const V_PV: usize = 7;
    /// Flow from systemic arteries to systemic veins (mL/s).
    pub const Q_SA: usize = 8;
    /// Flow from systemic veins to the right atrium (mL/s).
    pub const Q_SV: usize = 9;
    /// Flow from pulmonary arteries to pulmonary veins (mL/s).
    pub const Q_PA: usize = 10;
    /// Flow from pulmonary veins to the left atrium (mL/s).
    pub const Q_PV: usize = 11;
}

/// Number of state variables.
pub const N_STATE: usize = 12;

/// The state vector (see [`idx`]).
pub type State = [f64; N_STATE];

/// Names of the state variables, in [`idx`] order.
pub const STATE_NAMES: [&str; N_STATE] =
    ["V_LA", "V_LV", "V_RA", "V_RV", "V_SA", "V_SV", "V_PA", "V_PV", "Q_SA", "Q_SV", "Q_PA", "Q_PV"];

/// Activation `φ(t) ∈ [0, 1]` of a chamber (Regazzoni et al. 2022): a raised cosine rising over the
/// contraction and falling over the relaxation, periodic with the heart period; C¹ everywhere.
pub fn activation(c: &Chamber, period: f64, t: f64) -> f64 {
    let since = (t - c.t_contract).rem_euclid(period);
    if since < c.contraction {
        0.5 * (1.0 - (PI * since / c.contraction).cos())
    } else if since < c.contraction + c.relaxation {
        0.5 * (1.0 + (PI * (since - c.contraction) / c.relaxation).cos())
    } else {
        0.0
    }
}

/// Chamber pressure (mmHg) at volume `v` and time `t`.
pub fn chamber_pressure(c: &Chamber, period: f64, t: f64, v: f64) -> f64 {
    (c.e_pass + c.e_act * activation(c, period, t)) * (v - c.v0)
}

/// Vessel pressure (mmHg) at volume `v`.
pub fn vessel_pressure(vs: &Vessel, v: f64) -> f64 {
    (v - vs.unstressed) / vs.compliance
}

/// Flow (mL/s) through a valve with pressure drop `dp` (upstream minus downstream, mmHg): a diode with
/// resistance `r_open` when open and `r_closed` when closed, with the switch smoothed by a `tanh` of width
/// `width` so that the right-hand side stays smooth for the integrator.
pub fn valve_flow(dp: f64, r_open: f64, r_closed: f64, width: f64) -> f64 {
    let g_open = 1.0 / r_open;
    let g_closed = 1.0 / r_closed;
    let open = 0.5 * (1.0 + (dp / width).tanh());
    dp * (g_closed + (g_open - g_closed) * open)
}

/// Pressures (mmHg) and valve flows (mL/s) derived from a state at time `t`.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Derived {
    /// Left-atrial pressure.
    pub p_la: f64,
    /// Left-ventricular pressure.
    pub p_lv: f64,
    /// Right-atrial pressure.
    pub p_ra: f64,
    /// Right-ventricular pressure.
    pub p_rv: f64,
    /// Systemic arterial (aortic) pressure.
    pub p_sa: f64,
    /// Systemic venous pressure.
    pub p_sv: f64,
    /// Pulmonary arterial pressure.
    pub p_pa: f64,
    /// Pulmonary venous pressure.
    pub p_pv: f64,
    /// Mitral valve flow.
    pub q_mitral: f64,
    /// Aortic valve flow.
    pub q_aortic: f64,
    /// Tricuspid valve flow.
    pub q_tricuspid: f64,
    /// Pulmonary valve flow.
    pub q_pulmonary: f64,
}

impl Circuit {
    /// Pressures and valve flows of state `x` at time `t`.
    pub fn derived(&self, t: f64, x: &State) -> Derived {
        use idx::*;
        let p_la = chamber_pressure(&self.la, self.period, t, x[V_LA]);
        let p_lv = chamber_pressure(&self.lv, self.period, t, x[V_LV]);
        let p_ra = chamber_pressure(&self.ra, self.period, t, x[V_RA]);
        let p_rv = chamber_pressure(&self.rv, self.period, t, x[V_RV]);
        let p_sa = vessel_pressure(&self.sys_art, x[V_SA]);
        let p_sv = vessel_pressure(&self.sys_ven, x[V_SV]);
        let p_pa = vessel_pressure(&self.pul_art, x[V_PA]);
        let p_pv = vessel_pressure(&self.pul_ven, x[V_PV]);
        let valve = |dp| valve_flow(dp, self.valve_r_open, self.valve_r_closed, self.valve_smoothing);
        Derived {
            p_la,
            p_lv,
            p_ra,
            p_rv,
            p_sa,
            p_sv,
            p_pa,
            p_pv,
            q_mitral: valve(p_la - p_lv),
            q_aortic: valve(p_lv - p_sa),
            q_tricuspid: valve(p_ra - p_rv),
            q_pulmonary: valve(p_rv - p_pa),
        }
    }

    /// The right-hand side `dx/dt = f(t, x)`.
    pub fn rhs(&self, t: f64, x: &State) -> State {
        use idx::*;
        let d = self.derived(t, x);
        let mut dx = [0.0; N_STATE];
        dx[V_LA] = x[Q_PV] - d.q_mitral;
        dx[V_LV] = d.q_mitral - d.q_aortic;
        dx[V_RA] = x[Q_SV] - d.q_tricuspid;
        dx[V_RV] = d.q_tricuspid - d.q_pulmonary;
        dx[V_SA] = d.q_aortic - x[Q_SA];
        dx[V_SV] = x[Q_SA] - x[Q_SV];
        dx[V_PA] = d.q_pulmonary - x[Q_PA];
        dx[V_PV] = x[Q_PA] - x[Q_PV];
        // L dQ/dt = (p_up − p_down) − R Q
        let flow = |vs: &Vessel, q: f64, up: f64, down: f64| (up - down - vs.resistance * q) / vs.inertance;
        dx[Q_SA] = flow(&self.sys_art, x[Q_SA], d.p_sa, d.p_sv);
        dx[Q_SV] = flow(&self.sys_ven, x[Q_SV], d.p_sv, d.p_ra);
        dx[Q_PA] = flow(&self.pul_art, x[Q_PA], d.p_pa, d.p_pv);
        dx[Q_PV] = flow(&self.pul_ven, x[Q_PV], d.p_pv, d.p_la);
        dx
    }

    /// Total blood volume held by a state (mL).
    pub fn total_volume(x: &State) -> f64 {
        x[..8].iter().sum()
    }

    /// A starting state holding exactly [`Circuit::blood_volume`]: plausible pressures in every compartment,
    /// with the remaining volume put in the systemic veins (the reservoir), and flows at their resting values.
    pub fn initial_state(&self) -> State {
        use idx::*;
        let mut x = [0.0; N_STATE];
        x[V_LA] = self.la.v0 + 8.0 / self.la.e_pass;
        x[V_LV] = self.lv.v0 + 8.0 / self.lv.e_pass;
        x[V_RA] = self.ra.v0 + 4.0 / self.ra.e_pass;
        x[V_RV] = self.rv.v0 + 4.0 / self.rv.e_pass;
        x[V_SA] = self.sys_art.unstressed + 90.0 * self.sys_art.compliance;
        x[V_PA] = self.pul_art.unstressed + 15.0 * self.pul_art.compliance;
        x[V_PV] = self.pul_ven.unstressed + 9.0 * self.pul_ven.compliance;
        x[V_SV] = 0.0;
        x[V_SV] = self.blood_volume - Self::total_volume(&x);
        let q = 85.0;
        x[Q_SA] = q;
        x[Q_SV] = q;
        x[Q_PA] = q;
        x[Q_PV] = q;
        x
    }
}
