//! The whole attack on a data set, ciphertext only: eigenbasis, lane choice, every plaintext.

use ndarray::ArrayD;

use crate::attack::basis::{Eigenbasis, Lane};
use crate::attack::error::{AttackError, Result};
use crate::attack::lane::{DataPrior, LaneVerdict};
use crate::cipher::Ciphertext;
use crate::key::{NoiseRange, SecretKey};
use crate::mat2;
use crate::real::Real;
use crate::tensor::EncryptedTensor;

/// The outcome of the ciphertext-only attack: the key's eigenbasis oriented so that the chosen lane is the
/// data, with the evidence for that choice.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Recovery {
    /// The eigenbasis oriented so that [`Lane::First`] is the lane judged to be the message.
    pub basis: Eigenbasis,
    /// The lane decision (relative to the basis as estimated, before orienting it).
    pub verdict: LaneVerdict,
    /// Estimated absolute precision of recovered values, `8·ε·κ'²·max|value|` with `κ'` the condition
    /// number of the recovered eigenvector matrix and `ε` the plane type's machine epsilon.
    pub resolution: f64,
}

impl Recovery {
    /// The recovered plaintexts of any tensor under the same key.
    pub fn decrypt<F: Real>(&self, t: &EncryptedTensor<F>) -> ArrayD<f64> {
        self.basis.lane(t, Lane::First)
    }

    /// The recovered plaintexts, rounded to the prior's quantisation grid (8-bit levels).
    pub fn decrypt_snapped<F: Real>(&self, t: &EncryptedTensor<F>, prior: &DataPrior) -> ArrayD<f64> {
        self.decrypt(t).mapv(|x| prior.snap(x))
    }

    /// The random lane of every element (the noise — or, for trained weights, the shadow model).
    pub fn noise<F: Real>(&self, t: &EncryptedTensor<F>) -> ArrayD<f64> {
        self.basis.lane(t, Lane::Second)
    }

    /// The recovered plaintext of one ciphertext.
    pub fn decrypt_one(&self, c: &Ciphertext) -> f64 {
        self.basis.value(c, Lane::First)
    }

    /// An equivalent secret key (see [`Eigenbasis::key`]).
    pub fn key(&self, noise: NoiseRange) -> Result<SecretKey> {
        self.basis.key(Lane::First, noise)
    }
}

/// The ciphertext-only attack on tensors encrypted under one key: estimates the eigenbasis from all of
/// them, splits every element into its two lanes and decides which lane is the data from how it looks
/// (see [`crate::attack::lane`]).
pub fn ciphertext_only<F: Real>(tensors: &[&EncryptedTensor<F>], prior: &DataPrior) -> Result<Recovery> {
    let basis = Eigenbasis::estimate(tensors)?;
    let mut lanes: [Vec<f64>; 2] = [Vec::new(), Vec::new()];
    for t in tensors {
        let [a, b] = basis.lanes(t);
        lanes[0].extend(a.iter());
        lanes[1].extend(b.iter());
    }
    let resolution = resolution::<F>(&basis, &lanes);
    let verdict = LaneVerdict::from_looks([&lanes[0], &lanes[1]], prior, resolution);
    Ok(orient(basis, verdict, resolution))
}

/// The attack settled by one known plaintext: element `index` (flat) of `tensors[0]` is known to be
/// `value` (e.g. a corner pixel of an MNIST digit is always background).
pub fn with_known_value<F: Real>(tensors: &[&EncryptedTensor<F>], index: usize, value: f64) -> Result<Recovery> {
    let first = tensors.first().ok_or_else(|| AttackError::Input("no tensors".into()))?;
    let c = first
        .get(index)
        .ok_or_else(|| AttackError::Input(format!("index {index} out of range for {} values", first.len())))?;
    let basis = Eigenbasis::estimate(tensors)?;
    let verdict = LaneVerdict::from_known([basis.value(&c, Lane::First), basis.value(&c, Lane::Second)], value);
    let lanes = [vec![basis.value(&c, Lane::First)], vec![basis.value(&c, Lane::Second)]];
    let resolution = resolution::<F>(&basis, &lanes);
    Ok(orient(basis, verdict, resolution))
}

fn orient(basis: Eigenbasis, verdict: LaneVerdict, resolution: f64) -> Recovery {
    let basis = if verdict.lane == Lane::First { basis } else { basis.swapped() };
    Recovery { basis, verdict, resolution }
}

fn resolution<F: Real>(basis: &Eigenbasis, lanes: &[Vec<f64>; 2]) -> f64 {
    let [a, b] = basis.eigenvectors();
    let kappa = mat2::condition_number(&[[a[0], b[0]], [a[1], b[1]]]).min(1e12);
    let max = lanes.iter().flatten().fold(0.0f64, |m, x| m.max(x.abs()));
    8.0 * F::epsilon().as_f64() * kappa * kappa * max.max(f64::MIN_POSITIVE)
}
