//! A regression network under BFV: the whole-body circulation (WBC) surrogate, `inputs → hidden → square →
//! outputs` on integers, its exact `i64` simulation, post-training quantization, and its evaluation on
//! ciphertexts in the slot-per-sample packing of [`crate::batch`].
//!
//! **Scaling.** A patient's raw parameters `p` are standardised, `z = (p − mean) / std`, then scaled and
//! rounded by the client: `X = round(z · input_scale)`. Hidden unit `h` computes
//! `U_h = Σ_i A[h][i] · X_i + B[h]` ≈ `c_h · input_scale · u_h`, where `u_h` is the float pre-activation and
//! `c_h` a per-unit factor that brings the unit's largest weight to `hidden_levels`. Output `k` is
//! `Y_k = Σ_h V[k][h] · U_h² + D[k]` ≈ `divisor_k · y_k`: the factors `c_h²` are folded into the float
//! output weights before they are rounded, and `divisor_k` is as large as the plaintext modulus allows
//! (below). The client decodes `y_k = Y_k / divisor_k`, then the physical value
//! `y_k · output_scale_k + output_offset_k`.
//!
//! **No wrap-around for any accepted patient.** Inputs are accepted only inside the box
//! `[input_min, input_max]` (the simulator's parameter ranges), so every `|X_i|`, `|U_h|` — and every
//! partial sum, in any order, bounded by the sum of the absolute values of its terms — has a worst case over
//! the box that [`RegressionNet::box_ranges`] computes exactly. Quantization picks `divisor_k` so that this
//! worst case stays below `t/2`; [`RegressionNet::validate`] refuses a network
//! whose worst case reaches `t/2`. (Arithmetic modulo `t` is a ring, so only the final value would have to
//! fit; the bound on partial sums is kept as a second margin, as for MNIST.)
//!
//! **Packing.** Sample `b` sits in slot `b` of every ciphertext: input `i` is ciphertext `i` (7 of them, at
//! [`BATCH_INPUT_LEVEL`](crate::batch::BATCH_INPUT_LEVEL)), so one patient and 8,192 patients cost the same, and nothing needs a rotation.
//! The server computes each `U_h` as a [`ScaledSum`] of the input ciphertexts by small integers, squares it
//! (one ciphertext product, left unrelinearised), and sums the squares into the outputs' limbs; only the
//! [`result ciphertexts`](RegressionNet::result_ciphertexts) are relinearised (one [`BatchKeys`]), then
//! switched to [`crate::batch::BATCH_OUTPUT_LEVEL`].
//!
//! **Limbs.** One output value must stay below `t/2` (here about `2^33`), which leaves too few bits for
//! input, hidden and output weights together. Each output is therefore computed as
//! [`output_limbs`](RegressionScaling::output_limbs) values with the output weights split into base-`2^b`
//! digits; every limb is checked on its own, and the client adds them up (`Σ_l Y_{k,l} · 2^(b·l)`) after
//! decryption. Two limbs cost six more result ciphertexts and relinearisations, no ciphertext product.

use std::sync::atomic::AtomicBool;

use fhe::bfv::{Ciphertext, Plaintext};
use rand::{CryptoRng, RngCore};
use serde::{Deserialize, Serialize};

use crate::batch::{BatchKeys, ScaledSum, SquareLayer};
use crate::params::PLAINTEXT_MODULUS;
use crate::scheme::Client;
use crate::{BfvError, Result};

/// Largest number of inputs, hidden units or outputs a regression network may have.
pub const MAX_UNITS: usize = 256;

/// Largest magnitude of a hidden weight or bias (`2^40`, as for MNIST).
pub const MAX_WEIGHT: i64 = 1 << 40;

/// Largest magnitude of an output weight or bias (split into limbs before it meets a ciphertext).
pub const MAX_OUTPUT_WEIGHT: i64 = 1 << 56;

/// Most limbs per output.
pub const MAX_LIMBS: usize = 4;

/// Worst cases over the input box (or largest values over a set of samples): each bound covers every
/// partial sum in any order of summation.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct RegressionRanges {
    /// Scaled inputs `|X_i|`.
    pub input: i64,
    /// Hidden pre-activations `U_h`, incl. bias (sum of absolute values of the terms).
    pub hidden: i64,
    /// Their squares.
    pub square: i64,
    /// Outputs `Y_k`, incl. bias (sum of absolute values of the terms).
    pub output: i64,
}

impl RegressionRanges {
    /// The largest of the four.
    pub fn max(&self) -> i64 {
        self.input.max(self.hidden).max(self.square).max(self.output)
    }

    /// Elementwise maximum.
    pub fn merge(&self, other: &RegressionRanges) -> RegressionRanges {
        RegressionRanges {
            input: self.input.max(other.input),
            hidden: self.hidden.max(other.hidden),
            square: self.square.max(other.square),
            output: self.output.max(other.output),
        }
    }
}

/// The float weights of a trained `inputs → hidden → square → outputs` network, with the standardisation of
/// its inputs and outputs.
#[derive(Debug, Clone, Copy)]
pub struct FloatRegression<'a> {
    /// `[hidden][inputs]` row-major (transposed from more-nn's `[inputs, hidden]`).
    pub hidden_weight: &'a [f32],
    /// `[hidden]`.
    pub hidden_bias: &'a [f32],
    /// `[outputs][hidden]` row-major.
    pub output_weight: &'a [f32],
    /// `[outputs]`.
    pub output_bias: &'a [f32],
}

impl FloatRegression<'_> {
    /// The float network's standardised outputs for standardised inputs `z`.
    pub fn forward(&self, z: &[f64]) -> Vec<f64> {
        let (nh, no) = (self.hidden_bias.len(), self.output_bias.len());
        let ni = self.hidden_weight.len() / nh.max(1);
        let squares: Vec<f64> = (0..nh)
            .map(|h| {
                let u = f64::from(self.hidden_bias[h])
                    + self.hidden_weight[h * ni..(h + 1) * ni]
                        .iter()
                        .zip(z)
                        .map(|(w, x)| f64::from(*w) * x)
                        .sum::<f64>();
                u * u
            })
            .collect();
        (0..no)
            .map(|k| {
                f64::from(self.output_bias[k])
                    + self.output_weight[k * nh..(k + 1) * nh]
                        .iter()
                        .zip(&squares)
                        .map(|(w, s)| f64::from(*w) * s)
                        .sum::<f64>()
            })
            .collect()
    }
}

/// The float weights a [`RegressionNet`] was quantized from, kept in its model file so that the float,
/// integer and BFV networks can be compared on the same patients.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct FloatWeights {
    /// `[hidden][inputs]`.
    pub hidden_weight: Vec<f32>,
    /// `[hidden]`.
    pub hidden_bias: Vec<f32>,
    /// `[outputs][hidden]`.
    pub output_weight: Vec<f32>,
    /// `[outputs]`.
    pub output_bias: Vec<f32>,
}

impl FloatWeights {
    /// Borrowed view.
    pub fn view(&self) -> FloatRegression<'_> {
        FloatRegression {
            hidden_weight: &self.hidden_weight,
            hidden_bias: &self.hidden_bias,
            output_weight: &self.output_weight,
            output_bias: &self.output_bias,
        }
    }
}

/// What a client needs to scale a patient's inputs and read the outputs of a [`RegressionNet`] — and
/// nothing of its weights: the server lists it (`GET /api/v1/models`, `scaling`), and the page encrypts and
/// decrypts with it. The rules are written here once; [`RegressionNet`] holds one of these.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct RegressionScaling {
    /// Smallest accepted raw value of each input.
    pub input_min: Vec<f64>,
    /// Largest accepted raw value of each input.
    pub input_max: Vec<f64>,
    /// Standardisation: `z = (p − input_mean) / input_std`.
    pub input_mean: Vec<f64>,
    /// Standardisation: `z = (p − input_mean) / input_std`.
    pub input_std: Vec<f64>,
    /// `X = round(z · input_scale)`.
    pub input_scale: f64,
    /// The network's standardised output `k` is `Y_k / output_divisor[k]`.
    pub output_divisor: Vec<f64>,
    /// Each output is computed as this many limbs, `Y_k = Σ_l Y_{k,l} · 2^(limb_bits · l)`, each limb a
    /// result ciphertext that must stay below `t/2` on its own: the output weights get more bits than one
    /// plaintext value could hold. The client adds the limbs up after decryption.
    pub output_limbs: usize,
    /// Bits per limb (balanced digits in `[−2^(b−1), 2^(b−1))` for every limb but the top one).
    pub limb_bits: u32,
    /// Physical output: standardised `· output_scale + output_offset`.
    pub output_scale: Vec<f64>,
    /// Physical output: standardised `· output_scale + output_offset`.
    pub output_offset: Vec<f64>,
}

impl RegressionScaling {
    /// Number of inputs.
    pub fn inputs(&self) -> usize {
        self.input_min.len()
    }

    /// Number of outputs.
    pub fn outputs(&self) -> usize {
        self.output_divisor.len()
    }

    /// Result ciphertexts: outputs × limbs, limb `l` of output `k` at `k · limbs + l`.
    pub fn result_ciphertexts(&self) -> usize {
        self.outputs() * self.output_limbs
    }

    /// Checks the shapes (1 to [`MAX_UNITS`] inputs and outputs, every per-input and per-output list as
    /// long as the others), the limbs (1 to [`MAX_LIMBS`] of 1 to 30 bits, at most
    /// [`crate::wire::MAX_CIPHERTEXTS`] result ciphertexts) and that every scale is finite and positive and
    /// every box non-empty.
    pub fn validate(&self) -> Result<()> {
        let (ni, no) = (self.inputs(), self.outputs());
        if !(1..=MAX_UNITS).contains(&ni) || !(1..=MAX_UNITS).contains(&no) {
            return Err(BfvError::Model(format!("{ni} inputs, {no} outputs: each 1 to {MAX_UNITS}")));
        }
        let shapes = [
            ("input_max", self.input_max.len(), ni),
            ("input_mean", self.input_mean.len(), ni),
            ("input_std", self.input_std.len(), ni),
            ("output_scale", self.output_scale.len(), no),
            ("output_offset", self.output_offset.len(), no),
        ];
        if let Some((name, got, want)) = shapes.iter().find(|(_, got, want)| got != want) {
            return Err(BfvError::Model(format!(
                "{name} has {got} values, expected {want} for {ni} inputs and {no} outputs"
            )));
        }
        if !(1..=MAX_LIMBS).contains(&self.output_limbs)
            || self.result_ciphertexts() > crate::wire::MAX_CIPHERTEXTS
            || (self.output_limbs > 1 && !(1..=30).contains(&self.limb_bits))
        {
            return Err(BfvError::Model(format!(
                "{} limbs of {} bits for {no} outputs: 1 to {MAX_LIMBS} limbs of 1 to 30 bits, at most {} result \
                 ciphertexts",
                self.output_limbs,
                self.limb_bits,
                crate::wire::MAX_CIPHERTEXTS
            )));
        }
        let finite = self.input_min.iter().chain(&self.input_max).chain(&self.input_mean).chain(&self.output_offset);
        let positive = self.input_std.iter().chain(&self.output_divisor).chain(&self.output_scale);
        let sane = finite.clone().all(|v| v.is_finite())
            && positive.clone().all(|v| v.is_finite() && *v > 0.0)
            && self.input_scale.is_finite()
            && self.input_scale > 0.0
            && self.input_min.iter().zip(&self.input_max).all(|(lo, hi)| lo <= hi);
        if !sane {
            return Err(BfvError::Model("a scale, range or standardisation is not finite or not positive".into()));
        }
        Ok(())
    }

    /// Input `i`'s raw value standardised and scaled, before rounding: `(p − mean) / std · input_scale`.
    fn scaled(&self, i: usize, p: f64) -> f64 {
        (p - self.input_mean[i]) / self.input_std[i] * self.input_scale
    }

    /// The client's integer input for one patient's raw parameters: standardised, scaled, rounded. Values
    /// outside `[input_min, input_max]` (or not finite) are refused, never clamped: the no-wrap-around
    /// guarantee holds inside the box only.
    pub fn quantize_input(&self, raw: &[f64]) -> Result<Vec<i64>> {
        if raw.len() != self.inputs() {
            return Err(BfvError::Input(format!("{} input values, expected {}", raw.len(), self.inputs())));
        }
        raw.iter()
            .enumerate()
            .map(|(i, &p)| {
                if !(p.is_finite() && self.input_min[i] <= p && p <= self.input_max[i]) {
                    return Err(BfvError::Input(format!(
                        "input {i} = {p} is outside the accepted range [{}, {}]",
                        self.input_min[i], self.input_max[i]
                    )));
                }
                Ok(self.scaled(i, p).round() as i64)
            })
            .collect()
    }

    /// The largest `|X_i|` an accepted input can give, per input (at most [`MAX_WEIGHT`]).
    fn input_bounds(&self) -> Vec<i64> {
        (0..self.inputs())
            .map(|i| {
                let x = |p: f64| self.scaled(i, p).round().abs();
                x(self.input_min[i]).max(x(self.input_max[i])).min(MAX_WEIGHT as f64) as i64
            })
            .collect()
    }

    /// Limb `l` of `w`: balanced base-`2^limb_bits` digits, the top limb taking the rest, so that
    /// `w = Σ_l limb(w, l) · 2^(limb_bits · l)` ([`RegressionScaling::combine`] adds them back up).
    pub fn limb(&self, w: i64, l: usize) -> i64 {
        if self.output_limbs == 1 {
            return w;
        }
        let (b, half) = (self.limb_bits, 1i64 << (self.limb_bits - 1));
        let mut r = w;
        for _ in 0..l {
            let d = (r + half).rem_euclid(1 << b) - half;
            r = (r - d) >> b;
        }
        if l + 1 < self.output_limbs { (r + half).rem_euclid(1 << b) - half } else { r }
    }

    /// The outputs `Y_k` from the limbs (as [`RegressionNet::forward`] gives them and BFV decrypts them),
    /// [`RegressionScaling::output_limbs`] consecutive limbs per output.
    pub fn combine(&self, limbs: &[i64]) -> Vec<i128> {
        limbs
            .chunks(self.output_limbs)
            .map(|c| c.iter().enumerate().map(|(l, &v)| i128::from(v) << (self.limb_bits as usize * l)).sum())
            .collect()
    }

    /// The standardised outputs `Y_k / output_divisor[k]` from the limbs of the integer outputs.
    pub fn standardised_outputs(&self, limbs: &[i64]) -> Vec<f64> {
        self.combine(limbs).iter().zip(&self.output_divisor).map(|(&y, d)| y as f64 / d).collect()
    }

    /// The limbs of the integer outputs ([`RegressionScaling::result_ciphertexts`] of them, as BFV decrypts
    /// them) to physical values, one per output.
    pub fn decode(&self, limbs: &[i64]) -> Vec<f64> {
        self.physical(&self.standardised_outputs(limbs))
    }

    /// Raw inputs to standardised ones (no range check).
    pub fn standardise(&self, raw: &[f64]) -> Vec<f64> {
        raw.iter().zip(self.input_mean.iter().zip(&self.input_std)).map(|(p, (m, s))| (p - m) / s).collect()
    }

    /// Standardised outputs to physical values.
    pub fn physical(&self, standardised: &[f64]) -> Vec<f64> {
        standardised
            .iter()
            .zip(self.output_scale.iter().zip(&self.output_offset))
            .map(|(v, (s, o))| v * s + o)
            .collect()
    }
}

/// The integer regression network BFV evaluates, with the [`RegressionScaling`] a client needs to scale its
/// inputs and read the outputs (see the module documentation for the scaling). In the model file the
/// scaling's fields sit beside the weights (`#[serde(flatten)]`).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct RegressionNet {
    /// Number of inputs.
    pub inputs: usize,
    /// Hidden units (squared).
    pub hidden: usize,
    /// Number of outputs.
    pub outputs: usize,
    /// The client's side: input box, standardisation, input scale, output divisors, limbs, output scale
    /// and offset.
    #[serde(flatten)]
    pub scaling: RegressionScaling,
    /// `A`, `[hidden][inputs]`.
    pub hidden_weight: Vec<i64>,
    /// `B`, `[hidden]`.
    pub hidden_bias: Vec<i64>,
    /// `V`, `[outputs][hidden]`: the whole integers, split into [`RegressionScaling::output_limbs`] limbs
    /// before they meet a ciphertext.
    pub output_weight: Vec<i64>,
    /// `D`, `[outputs]`, split like `V`.
    pub output_bias: Vec<i64>,
}

fn half_t() -> i64 {
    (PLAINTEXT_MODULUS / 2) as i64
}

impl RegressionNet {
    /// Checks the scaling ([`RegressionScaling::validate`]), the shapes, the weight magnitudes, and that the
    /// worst case over the input box stays below `t/2`.
    pub fn validate(&self) -> Result<()> {
        self.scaling.validate()?;
        let (ni, nh, no) = (self.inputs, self.hidden, self.outputs);
        if !(1..=MAX_UNITS).contains(&nh) {
            return Err(BfvError::Model(format!("{nh} hidden units: 1 to {MAX_UNITS}")));
        }
        let shapes = [
            ("the scaling's inputs", self.scaling.inputs(), ni),
            ("the scaling's outputs", self.scaling.outputs(), no),
            ("hidden_weight", self.hidden_weight.len(), nh * ni),
            ("hidden_bias", self.hidden_bias.len(), nh),
            ("output_weight", self.output_weight.len(), no * nh),
            ("output_bias", self.output_bias.len(), no),
        ];
        if let Some((name, got, want)) = shapes.iter().find(|(_, got, want)| got != want) {
            return Err(BfvError::Model(format!(
                "{name}: {got} values, expected {want} for {ni} -> {nh} -> square -> {no}"
            )));
        }
        if self.hidden_weight.iter().chain(&self.hidden_bias).any(|w| w.abs() >= MAX_WEIGHT)
            || self.output_weight.iter().chain(&self.output_bias).any(|w| w.abs() >= MAX_OUTPUT_WEIGHT)
        {
            return Err(BfvError::Model("a hidden weight is 2^40 or larger, or an output weight 2^56".into()));
        }
        let worst = self.box_ranges();
        if worst.max() >= half_t() {
            return Err(BfvError::Model(format!(
                "a value reaches t/2 = {} for some accepted input (worst case {})",
                half_t(),
                worst.max()
            )));
        }
        Ok(())
    }

    /// Worst cases over the input box: `Σ|A|·max|X| + |B|` per hidden unit, its square, and
    /// `Σ|V|·max U² + |D|` per output (saturating, so a huge network reports a huge bound rather than
    /// overflowing).
    pub fn box_ranges(&self) -> RegressionRanges {
        let xmax = self.scaling.input_bounds();
        let umax: Vec<i64> = (0..self.hidden)
            .map(|h| {
                self.hidden_weight[h * self.inputs..(h + 1) * self.inputs]
                    .iter()
                    .zip(&xmax)
                    .fold(self.hidden_bias[h].saturating_abs(), |s, (a, x)| {
                        s.saturating_add(a.saturating_abs().saturating_mul(*x))
                    })
            })
            .collect();
        let square = |u: i64| u.saturating_mul(u);
        let (weight, bias) = self.limb_weights();
        let output = (0..self.result_ciphertexts())
            .map(|r| {
                weight[r * self.hidden..(r + 1) * self.hidden]
                    .iter()
                    .zip(&umax)
                    .fold(bias[r].saturating_abs(), |s, (v, u)| {
                        s.saturating_add(v.saturating_abs().saturating_mul(square(*u)))
                    })
            })
            .max()
            .unwrap_or(0);
        let hidden = umax.iter().copied().max().unwrap_or(0);
        RegressionRanges { input: xmax.iter().copied().max().unwrap_or(0), hidden, square: square(hidden), output }
    }

    /// Result ciphertexts: outputs × limbs ([`RegressionScaling::result_ciphertexts`]).
    pub fn result_ciphertexts(&self) -> usize {
        self.scaling.result_ciphertexts()
    }

    /// The output weights `[outputs · limbs][hidden]` and biases `[outputs · limbs]` split into limbs, in
    /// the order of the result ciphertexts.
    pub fn limb_weights(&self) -> (Vec<i64>, Vec<i64>) {
        let (nh, nl) = (self.hidden, self.scaling.output_limbs);
        let mut weight = Vec::with_capacity(self.result_ciphertexts() * nh);
        let mut bias = Vec::with_capacity(self.result_ciphertexts());
        for k in 0..self.outputs {
            for l in 0..nl {
                weight.extend(self.output_weight[k * nh..(k + 1) * nh].iter().map(|&w| self.scaling.limb(w, l)));
                bias.push(self.scaling.limb(self.output_bias[k], l));
            }
        }
        (weight, bias)
    }

    /// The exact integer forward pass on a quantized input: the limbs of the integer outputs (what BFV
    /// decrypts, [`RegressionNet::result_ciphertexts`] values) and the ranges met.
    pub fn forward(&self, x: &[i64]) -> (Vec<i64>, RegressionRanges) {
        let mut r = RegressionRanges { input: x.iter().map(|v| v.abs()).max().unwrap_or(0), ..Default::default() };
        let squares: Vec<i64> = (0..self.hidden)
            .map(|h| {
                let (mut u, mut bound) = (self.hidden_bias[h], self.hidden_bias[h].abs());
                for (a, xi) in self.hidden_weight[h * self.inputs..(h + 1) * self.inputs].iter().zip(x) {
                    u += a * xi;
                    bound += (a * xi).abs();
                }
                r.hidden = r.hidden.max(bound);
                r.square = r.square.max(u * u);
                u * u
            })
            .collect();
        let (weight, bias) = self.limb_weights();
        let y = (0..self.result_ciphertexts())
            .map(|c| {
                let (mut y, mut bound) = (bias[c], bias[c].abs());
                for (v, s) in weight[c * self.hidden..(c + 1) * self.hidden].iter().zip(&squares) {
                    y += v * s;
                    bound += (v * s).abs();
                }
                r.output = r.output.max(bound);
                y
            })
            .collect();
        (y, r)
    }

    /// Post-training quantization (see the module documentation). `template` gives the shapes, the input
    /// box and the standardisation (its weights are ignored); `input_scale` and `hidden_levels` set the
    /// precision of `X` and of the hidden weights. With `limbs` limbs per output, the lower limbs get the
    /// most bits that keep their worst case below `t/2`; each output's divisor is then the largest
    /// divisor that keeps the top limb's worst case over the input box below `t/2`.
    pub fn quantize(
        float: &FloatRegression<'_>,
        template: &RegressionNet,
        input_scale: f64,
        hidden_levels: i64,
        limbs: usize,
    ) -> Result<RegressionNet> {
        let (ni, nh, no) = (template.inputs, template.hidden, template.outputs);
        if float.hidden_weight.len() != nh * ni
            || float.hidden_bias.len() != nh
            || float.output_weight.len() != no * nh
            || float.output_bias.len() != no
        {
            return Err(BfvError::Model(format!("expected the float weights of {ni} -> {nh} -> square -> {no}")));
        }
        if !(input_scale.is_finite() && input_scale >= 1.0 && (1..=1 << 20).contains(&hidden_levels)) {
            return Err(BfvError::Model(format!(
                "input scale {input_scale} (at least 1) or hidden levels {hidden_levels} (1 to 2^20) out of range"
            )));
        }
        let q = |v: f64| v.round() as i64;
        let mut net = RegressionNet {
            scaling: RegressionScaling {
                input_scale,
                output_divisor: vec![1.0; no],
                output_limbs: limbs,
                limb_bits: 0,
                ..template.scaling.clone()
            },
            hidden_weight: vec![0; nh * ni],
            hidden_bias: vec![0; nh],
            output_weight: vec![0; no * nh],
            output_bias: vec![0; no],
            ..template.clone()
        };
        if !(1..=MAX_LIMBS).contains(&limbs) {
            return Err(BfvError::Model(format!("{limbs} limbs, expected 1 to {MAX_LIMBS}")));
        }
        // Per hidden unit: c_h brings its largest weight to `hidden_levels`; U_h ≈ c_h · input_scale · u_h.
        let mut unit_scale = vec![0.0f64; nh];
        for (h, (scale, row)) in unit_scale.iter_mut().zip(float.hidden_weight.chunks_exact(ni)).enumerate() {
            let m = row.iter().fold(0f64, |m, w| m.max(f64::from(*w).abs())).max(1e-12);
            let c = hidden_levels as f64 / m;
            *scale = c * input_scale;
            for (a, w) in net.hidden_weight[h * ni..(h + 1) * ni].iter_mut().zip(row) {
                *a = q(f64::from(*w) * c);
            }
            net.hidden_bias[h] = q(f64::from(float.hidden_bias[h]) * *scale);
        }
        // The hidden units' worst cases fix every output's largest divisor.
        let umax = net.box_hidden_max();
        // The worst case over the input box is a bound for every accepted input, so it may come right up
        // to t/2.
        let target = (half_t() - 1) as f64;
        let squares: f64 = umax.iter().map(|&u| (u as f64).powi(2)).sum::<f64>() + 1.0;
        // Lower limbs: digits of magnitude at most 2^(b−1), so their worst case is 2^(b−1) · Σ U_max².
        let lower_bits = if limbs > 1 {
            let b = (target / squares).log2().floor() as i64 + 1;
            if !(1..=30).contains(&b) {
                return Err(BfvError::Model(format!(
                    "the hidden values are too large for limbs (a limb would have {b} bits)"
                )));
            }
            b as u32
        } else {
            0
        };
        net.scaling.limb_bits = lower_bits;
        let top_factor = 2f64.powi((lower_bits as usize * (limbs - 1)) as i32);
        for k in 0..no {
            // Σ_h |v_kh| / s_h² · U_h,max² (float weights folded) + |d_k|, per unit of divisor.
            let per_unit: f64 = (0..nh)
                .map(|h| {
                    f64::from(float.output_weight[k * nh + h]).abs() / unit_scale[h].powi(2) * (umax[h] as f64).powi(2)
                })
                .sum::<f64>()
                + f64::from(float.output_bias[k]).abs();
            // The largest divisor that fits, lowered by 0.1% until the rounded weights fit too.
            let mut divisor = target / per_unit.max(1e-300) * top_factor;
            loop {
                for (h, scale) in unit_scale.iter().enumerate() {
                    net.output_weight[k * nh + h] =
                        q(f64::from(float.output_weight[k * nh + h]) / scale.powi(2) * divisor);
                }
                net.output_bias[k] = q(f64::from(float.output_bias[k]) * divisor);
                net.scaling.output_divisor[k] = divisor;
                let fits = net.output_weight.iter().chain(&net.output_bias).all(|w| w.abs() < MAX_OUTPUT_WEIGHT)
                    && net.box_ranges().output < target as i64;
                if fits || divisor < 1e-300 {
                    break;
                }
                divisor *= 0.999;
            }
        }
        net.validate()?;
        Ok(net)
    }

    fn box_hidden_max(&self) -> Vec<i64> {
        let xmax = self.scaling.input_bounds();
        (0..self.hidden)
            .map(|h| {
                self.hidden_weight[h * self.inputs..(h + 1) * self.inputs]
                    .iter()
                    .zip(&xmax)
                    .fold(self.hidden_bias[h].abs(), |s, (a, x)| s.saturating_add(a.abs().saturating_mul(*x)))
            })
            .collect()
    }
}

impl Client {
    /// Encrypts up to [`BATCH_SLOTS`](crate::batch::BATCH_SLOTS) patients' quantized inputs (`inputs` values each): one ciphertext per
    /// input at [`BATCH_INPUT_LEVEL`](crate::batch::BATCH_INPUT_LEVEL), patient `b` in slot `b`, empty slots zero.
    pub fn encrypt_samples<R: RngCore + CryptoRng>(
        &self,
        samples: &[Vec<i64>],
        inputs: usize,
        rng: &mut R,
    ) -> Result<Vec<Ciphertext>> {
        self.encrypt_slot_columns(samples, inputs, rng)
    }

    /// Decrypts `outputs` result ciphertexts into the integer outputs of the first `samples` patients.
    pub fn decrypt_samples(&self, cts: &[Ciphertext], outputs: usize, samples: usize) -> Result<Vec<Vec<i64>>> {
        self.decrypt_slot_columns(cts, outputs, samples)
    }
}

/// The server side: a [`RegressionNet`] with its biases encoded once.
pub struct RegressionEvaluator {
    net: RegressionNet,
    hidden_bias: Vec<Plaintext>,
    /// `[outputs · limbs][hidden]`.
    limb_weight: Vec<i64>,
    output_bias: Vec<Plaintext>,
}

impl std::fmt::Debug for RegressionEvaluator {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("RegressionEvaluator").field("hidden", &self.net.hidden).finish_non_exhaustive()
    }
}

impl RegressionEvaluator {
    /// Checks `net` and encodes its biases.
    pub fn new(net: &RegressionNet) -> Result<RegressionEvaluator> {
        net.validate()?;
        let constant = crate::batch::slot_constant;
        let (limb_weight, limb_bias) = net.limb_weights();
        Ok(RegressionEvaluator {
            net: net.clone(),
            hidden_bias: net.hidden_bias.iter().map(|&b| constant(b)).collect::<Result<_>>()?,
            limb_weight,
            output_bias: limb_bias.iter().map(|&b| constant(b)).collect::<Result<_>>()?,
        })
    }

    /// The network it evaluates.
    pub fn net(&self) -> &RegressionNet {
        &self.net
    }

    /// Evaluates the network on [`RegressionNet::inputs`] input ciphertexts (fresh, two polynomials, at
    /// [`BATCH_INPUT_LEVEL`](crate::batch::BATCH_INPUT_LEVEL)) → [`RegressionNet::result_ciphertexts`] result ciphertexts at
    /// [`crate::batch::BATCH_OUTPUT_LEVEL`], on all of rayon's threads.
    pub fn evaluate(&self, keys: &BatchKeys, inputs: &[Ciphertext]) -> Result<Vec<Ciphertext>> {
        let net = &self.net;
        let layer = SquareLayer {
            inputs: net.inputs,
            hidden: net.hidden,
            outputs: net.result_ciphertexts(),
            pre_activation: &|h: usize, sum: &mut ScaledSum, inputs: &[Ciphertext]| {
                for (ct, &a) in inputs.iter().zip(&net.hidden_weight[h * net.inputs..(h + 1) * net.inputs]) {
                    sum.add(ct, a);
                }
            },
            hidden_bias: &|h: usize| &self.hidden_bias[h],
            output_weight: &|r: usize, h: usize| self.limb_weight[r * net.hidden + h],
            output_bias: &self.output_bias,
        };
        layer.evaluate(keys, inputs, &|_, _| {}, &AtomicBool::new(false))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    pub(crate) fn tiny() -> RegressionNet {
        RegressionNet {
            inputs: 2,
            hidden: 3,
            outputs: 2,
            scaling: RegressionScaling {
                input_min: vec![0.0, 10.0],
                input_max: vec![1.0, 20.0],
                input_mean: vec![0.5, 15.0],
                input_std: vec![0.25, 2.5],
                input_scale: 64.0,
                output_divisor: vec![1024.0, 2048.0],
                output_limbs: 1,
                limb_bits: 0,
                output_scale: vec![10.0, 1.0],
                output_offset: vec![100.0, 5.0],
            },
            hidden_weight: vec![3, -2, 1, 4, -5, 0],
            hidden_bias: vec![7, -1, 2],
            output_weight: vec![2, -1, 3, 0, 1, -4],
            output_bias: vec![100, -50],
        }
    }

    #[test]
    fn forward_is_the_definition_and_stays_within_the_box_bound() {
        let net = tiny();
        net.validate().unwrap();
        let x = net.scaling.quantize_input(&[0.9, 11.0]).unwrap();
        assert_eq!(
            x,
            vec![((0.9 - 0.5) / 0.25 * 64.0f64).round() as i64, ((11.0 - 15.0) / 2.5 * 64.0f64).round() as i64]
        );
        let (y, r) = net.forward(&x);
        let u: Vec<i64> = (0..3)
            .map(|h| net.hidden_bias[h] + net.hidden_weight[2 * h] * x[0] + net.hidden_weight[2 * h + 1] * x[1])
            .collect();
        for (k, got) in y.iter().enumerate() {
            let expect = net.output_bias[k] + (0..3).map(|h| net.output_weight[3 * k + h] * u[h] * u[h]).sum::<i64>();
            assert_eq!(*got, expect);
        }
        let worst = net.box_ranges();
        assert!(r.output <= worst.output && r.hidden <= worst.hidden && r.input <= worst.input);
    }

    #[test]
    fn inputs_outside_the_box_and_bad_shapes_are_refused() {
        let net = tiny();
        assert!(net.scaling.quantize_input(&[1.5, 11.0]).is_err());
        assert!(net.scaling.quantize_input(&[f64::NAN, 11.0]).is_err());
        assert!(net.scaling.quantize_input(&[0.5]).is_err());
        let mut bad = tiny();
        bad.output_bias.pop();
        assert!(bad.validate().is_err());
        let mut huge = tiny();
        huge.output_weight[0] = 1 << 39;
        assert!(huge.validate().is_err(), "a worst case beyond t/2 is refused");
    }

    #[test]
    fn quantization_reproduces_the_float_network() {
        let template = tiny();
        let hw = [0.3f32, -0.2, 0.1, 0.4, -0.5, 0.05];
        let hb = [0.1f32, -0.2, 0.3];
        let ow = [0.2f32, -0.1, 0.3, 0.0, 0.1, -0.4];
        let ob = [0.05f32, -0.02];
        let float = FloatRegression { hidden_weight: &hw, hidden_bias: &hb, output_weight: &ow, output_bias: &ob };
        for limbs in [1, 2] {
            let net = RegressionNet::quantize(&float, &template, 64.0, 31, limbs).unwrap();
            assert_eq!(net.scaling.output_limbs, limbs);
            assert!(net.box_ranges().output < half_t());
            for raw in [[0.1, 12.0], [0.9, 19.0], [0.5, 15.0]] {
                let z: Vec<f64> =
                    (0..2).map(|i| (raw[i] - template.scaling.input_mean[i]) / template.scaling.input_std[i]).collect();
                let (y, _) = net.forward(&net.scaling.quantize_input(&raw).unwrap());
                for k in 0..2 {
                    let f = f64::from(ob[k])
                        + (0..3)
                            .map(|h| {
                                let u =
                                    f64::from(hb[h]) + f64::from(hw[2 * h]) * z[0] + f64::from(hw[2 * h + 1]) * z[1];
                                f64::from(ow[3 * k + h]) * u * u
                            })
                            .sum::<f64>();
                    let got = net.scaling.combine(&y)[k] as f64 / net.scaling.output_divisor[k];
                    assert!((got - f).abs() < 0.02, "output {k}: {got} vs {f}");
                }
            }
        }
    }

    #[test]
    fn limbs_add_up_to_the_weight() {
        let mut net = tiny();
        net.scaling.output_limbs = 3;
        net.scaling.limb_bits = 5;
        for w in [0i64, 1, -1, 15, 16, -16, 17, 1023, -1024, 123_456_789, -987_654_321] {
            let limbs: Vec<i64> = (0..3).map(|l| net.scaling.limb(w, l)).collect();
            assert!(limbs[..2].iter().all(|d| (-16..16).contains(d)), "{w}: {limbs:?}");
            assert_eq!(net.scaling.combine(&limbs), vec![i128::from(w)]);
        }
    }
}
