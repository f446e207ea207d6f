//! The key owner's side: encrypting training inputs and labels, known-answer canaries, and decrypting
//! what the trainer sends back (losses, logits, weights). Nothing here is needed by the trainer, which
//! only ever sees ciphertexts (a server can train without the key).
//!
//! ## How the random lane `r` is drawn
//! The training path ([`crate::train::EncryptionSetup`]) draws input noise uniform in a chosen range
//! (default `[0, 0.25)`) and gives each one-hot label row a noise lane that is a probability vector close
//! to uniform ([`crate::train::TargetNoise`]); see `docs/encrypted-training.md` for what was measured.
//! [`KeyOwner::encrypt_one_hot`] is the simpler variant with a flat Dirichlet noise row.

use ndarray::{ArrayD, ArrayViewD, IxDyn};
use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha20Rng;

use more_core::{Ciphertext, EncryptedTensor, Real, SecretKey};

use crate::basis::Basis;
use crate::coeff::CoeffTensor;
use crate::error::{Error, Result};

/// Number of known-answer canaries encrypted with every data set.
pub const CANARIES: usize = 16;

/// Largest error accepted on a decrypted canary (relative to its scale of 1).
pub const CANARY_TOLERANCE: f64 = 1e-3;

/// Encrypts `m` with the chosen random lane `r` elementwise: `C = r·I + (m − r)·P`.
pub fn encrypt_lanes<F: Real>(
    key: &SecretKey,
    m: &ArrayViewD<'_, F>,
    r: &ArrayViewD<'_, F>,
) -> Result<EncryptedTensor<F>> {
    if m.shape() != r.shape() {
        return Err(Error::ShapeMismatch { op: "encrypt_lanes", left: m.shape().to_vec(), right: r.shape().to_vec() });
    }
    let p = key.message_projector();
    let n = m.len();
    let mut planes: [Vec<F>; 4] = std::array::from_fn(|_| Vec::with_capacity(n));
    for (&mv, &rv) in m.iter().zip(r.iter()) {
        let (mv, rv) = (mv.as_f64(), rv.as_f64());
        if !mv.is_finite() || !rv.is_finite() {
            return Err(Error::Invalid(format!("cannot encrypt non-finite value {mv}")));
        }
        let d = mv - rv;
        planes[0].push(F::from_f64(rv + d * p[0][0]));
        planes[1].push(F::from_f64(d * p[0][1]));
        planes[2].push(F::from_f64(d * p[1][0]));
        planes[3].push(F::from_f64(rv + d * p[1][1]));
    }
    let shape = IxDyn(m.shape());
    let [a, b, c, d] = planes.map(|v| ArrayD::from_shape_vec(shape.clone(), v).expect("shape"));
    Ok(EncryptedTensor::from_planes([a, b, c, d])?)
}

/// The holder of the secret key.
pub struct KeyOwner {
    key: SecretKey,
    rng: ChaCha20Rng,
}

impl std::fmt::Debug for KeyOwner {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("KeyOwner").field("key", &self.key).finish_non_exhaustive()
    }
}

impl KeyOwner {
    /// A key owner drawing its random lanes from the OS CSPRNG.
    pub fn new(key: SecretKey) -> Self {
        Self { key, rng: ChaCha20Rng::from_os_rng() }
    }

    /// A key owner with reproducible random lanes (tests, experiments).
    pub fn with_seed(key: SecretKey, seed: u64) -> Self {
        Self { key, rng: ChaCha20Rng::seed_from_u64(seed) }
    }

    /// The generator of the random lanes.
    pub(crate) fn rng(&mut self) -> &mut ChaCha20Rng {
        &mut self.rng
    }

    /// The key.
    pub fn key(&self) -> &SecretKey {
        &self.key
    }

    /// Encrypts inputs with `r` uniform in `[lo, hi)` (the data range).
    pub fn encrypt_inputs<F: Real>(&mut self, x: &ArrayViewD<'_, F>, lo: f64, hi: f64) -> Result<EncryptedTensor<F>> {
        if !(lo < hi && lo.is_finite() && hi.is_finite()) {
            return Err(Error::Invalid(format!("noise range [{lo}, {hi}) is empty")));
        }
        let r = ArrayD::from_shape_fn(x.raw_dim(), |_| F::from_f64(self.rng.random_range(lo..hi)));
        encrypt_lanes(&self.key, x, &r.view())
    }

    /// Encrypts class labels as one-hot rows `[n, classes]`; each row's noise lane is a random
    /// probability vector (flat Dirichlet).
    pub fn encrypt_one_hot<F: Real>(&mut self, labels: &[usize], classes: usize) -> Result<EncryptedTensor<F>> {
        if let Some(&bad) = labels.iter().find(|&&l| l >= classes) {
            return Err(Error::Invalid(format!("label {bad} is not below the number of classes {classes}")));
        }
        let n = labels.len();
        let mut m = ArrayD::<F>::zeros(IxDyn(&[n, classes]));
        let mut r = ArrayD::<F>::zeros(IxDyn(&[n, classes]));
        for (i, &l) in labels.iter().enumerate() {
            m[[i, l]] = F::one();
            let e: Vec<f64> = (0..classes).map(|_| -(1.0 - self.rng.random::<f64>()).ln()).collect();
            let s: f64 = e.iter().sum();
            for (k, v) in e.iter().enumerate() {
                r[[i, k]] = F::from_f64(v / s);
            }
        }
        encrypt_lanes(&self.key, &m.view(), &r.view())
    }

    /// The known-answer canary values of this key: derived from the key itself, so only its holder can
    /// recompute them, and they are not a known plaintext for the trainer.
    pub fn canary_values(&self) -> Vec<f64> {
        let bytes = self.key.to_bytes();
        let mut seed = 0xcbf2_9ce4_8422_2325u64;
        for b in bytes {
            seed = (seed ^ u64::from(b)).wrapping_mul(0x100_0000_01b3);
        }
        let mut rng = ChaCha20Rng::seed_from_u64(seed);
        (0..CANARIES).map(|_| rng.random_range(-1.0..1.0)).collect()
    }

    /// Encrypts the canaries (sent with the data; the trainer carries them untouched).
    pub fn encrypt_canaries<F: Real>(&mut self) -> Result<EncryptedTensor<F>> {
        let v: Vec<F> = self.canary_values().into_iter().map(F::from_f64).collect();
        let x = ArrayD::from_shape_vec(IxDyn(&[CANARIES]), v).expect("shape");
        self.encrypt_inputs(&x.view(), -1.0, 1.0)
    }

    /// The message lane of every element: `m = α + d·β` with `d = Dec(X̂)` (`±√q`).
    pub fn decrypt<F: Real>(&self, c: &CoeffTensor<F>) -> ArrayD<F> {
        lane(c, self.key.decrypt(&Ciphertext(c.basis().xhat)))
    }

    /// The random lane (the shadow computation on noise), for studying how bounded it stays.
    pub fn decrypt_noise<F: Real>(&self, c: &CoeffTensor<F>) -> ArrayD<F> {
        lane(c, self.key.decrypt_noise_lane(&Ciphertext(c.basis().xhat)))
    }

    /// The known-answer check: decrypts the canaries and compares them with the values this key
    /// expects. A wrong key (or data encrypted under another key) fails with [`Error::WrongKey`].
    pub fn verify_canaries<F: Real>(&self, canaries: &CoeffTensor<F>) -> Result<()> {
        let expected = self.canary_values();
        let got = self.decrypt(canaries);
        if got.len() != expected.len() {
            return Err(Error::WrongKey(format!("expected {} canaries, got {}", expected.len(), got.len())));
        }
        let worst = got.iter().zip(&expected).map(|(g, e)| (g.as_f64() - e).abs()).fold(0.0, f64::max);
        if worst.is_nan() || worst > CANARY_TOLERANCE {
            return Err(Error::WrongKey(format!(
                "known-answer canaries decrypt with error {worst:.3e} (tolerance {CANARY_TOLERANCE:e}): this key did not encrypt the data"
            )));
        }
        Ok(())
    }

    /// Decrypts after the known-answer check.
    pub fn decrypt_checked<F: Real>(&self, c: &CoeffTensor<F>, canaries: &CoeffTensor<F>) -> Result<ArrayD<F>> {
        self.verify_canaries(canaries)?;
        Ok(self.decrypt(c))
    }

    /// The reference basis a trainer would choose for these ciphertexts (a convenience; it is key-free).
    pub fn basis_of<F: Real>(c: &EncryptedTensor<F>) -> Result<Basis> {
        Basis::from_ciphertexts(c)
    }
}

fn lane<F: Real>(c: &CoeffTensor<F>, d: f64) -> ArrayD<F> {
    let d = F::from_f64(d);
    ndarray::Zip::from(c.alpha()).and(c.beta()).map_collect(|&a, &b| a + d * b)
}
