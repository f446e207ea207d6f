//! Encrypted training end to end, task-generic: the key owner encrypts, the trainer trains on
//! ciphertexts with `more-nn`'s training loop ([`more_nn::train::fit()`] — the same code, progress bar,
//! checkpoints and early stopping as plaintext training), the owner checks the canaries and decrypts.
//!
//! [`train_encrypted`] plays both roles in one process (the CLI holds the key); the pieces are separate so
//! a server can run [`Trainer`] alone:
//! - key owner: [`encrypt_data`], [`KeyOwner::encrypt_canaries`], [`decrypt_model`];
//! - trainer: [`Trainer`] (a basis, datasets, the network — no key).

use ndarray::{ArrayD, Axis, IxDyn};
use rand::SeedableRng;
use rand_chacha::ChaCha8Rng;
use serde::{Deserialize, Serialize};

use more_core::{EncryptedTensor, SecretKey};
use more_nn::train::{Dataset, History, Net, TrainConfig, fit};
use more_nn::{LayerSpec, Model, ModelMeta, Reveal};

use crate::algebra::{Encrypted, OwnerReveal};
use crate::basis::Basis;
use crate::coeff::CoeffTensor;
use crate::dataset::{DatasetBuilder, EncryptedDataset};
use crate::error::{Error, Result};
use crate::model_file::EncryptedModel;
use crate::owner::{KeyOwner, encrypt_lanes};

/// Plaintext inputs `[N, ...input_shape]` and targets `[N, K]`, as the key owner has them.
#[derive(Debug, Clone)]
pub struct PlainData {
    /// Preprocessed inputs.
    pub inputs: ArrayD<f32>,
    /// One-hot rows (classification) or target values (regression).
    pub targets: ArrayD<f32>,
}

/// How targets are encrypted (which noise their random lane gets).
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub enum TargetNoise {
    /// Rows are probability vectors (one-hot labels): the noise lane of each row is a random probability
    /// vector `(1 + spread·uₖ)/Σ` with `uₖ` uniform in `[−1, 1)` — a distribution, so the shadow model's
    /// cross-entropy gradient sums to zero, and close to uniform for small `spread`, so the shadow model's
    /// gradients stay small next to the real ones.
    Distribution {
        /// Relative spread around the uniform distribution, in `[0, 1)`.
        spread: f64,
    },
    /// Regression targets: noise uniform in `[lo, hi)` (the range of the targets).
    Uniform {
        /// Lower end.
        lo: f64,
        /// Upper end.
        hi: f64,
    },
}

/// The key owner's encryption choices.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct EncryptionSetup {
    /// Noise range of the inputs' random lane. Default `[0, 0.25)`: a quarter of the `[0, 1]` pixel range,
    /// so the shadow model's activations and gradients stay smaller than the real ones (see
    /// `docs/encrypted-training.md`).
    pub input_noise: (f64, f64),
    /// Noise of the targets' random lane.
    pub targets: TargetNoise,
    /// Rows encrypted per chunk (bounds the 4-plane copy in memory).
    pub chunk: usize,
}

impl Default for EncryptionSetup {
    fn default() -> Self {
        Self { input_noise: (0.0, 0.25), targets: TargetNoise::Distribution { spread: 0.5 }, chunk: 2048 }
    }
}

impl EncryptionSetup {
    /// Noise lanes for standardised regression data (inputs of unit variance, targets scaled into
    /// `[-1, 1]`): uniform over the data ranges, `[-2, 2)` for inputs and `[-1, 1)` for targets.
    pub fn standardised_regression() -> Self {
        Self { input_noise: (-2.0, 2.0), targets: TargetNoise::Uniform { lo: -1.0, hi: 1.0 }, chunk: 2048 }
    }

    /// The noise lanes for a network offered for training jobs: the default for classification (inputs
    /// in `[0, 1]`, one-hot targets), [`EncryptionSetup::standardised_regression`] otherwise.
    pub fn for_network(net: &more_nn::networks::Trainable) -> Self {
        if net.classification { Self::default() } else { Self::standardised_regression() }
    }
}

/// The description of an encrypted model's network, stored in its file.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct NetSpec {
    /// Input shape without the batch axis.
    pub input_shape: Vec<usize>,
    /// The layers.
    pub layers: Vec<LayerSpec>,
    /// Metadata of the model the owner will decrypt.
    pub meta: ModelMeta,
}

impl KeyOwner {
    /// Encrypts target rows with the chosen noise.
    pub fn encrypt_targets(&mut self, y: &ArrayD<f32>, noise: TargetNoise) -> Result<EncryptedTensor<f32>> {
        match noise {
            TargetNoise::Uniform { lo, hi } => self.encrypt_inputs(&y.view(), lo, hi),
            TargetNoise::Distribution { spread } => {
                if y.ndim() != 2 {
                    return Err(Error::Invalid(format!("targets must be [N, K], got {:?}", y.shape())));
                }
                if !(0.0..1.0).contains(&spread) {
                    return Err(Error::Invalid(format!("label noise spread {spread} must be in [0, 1)")));
                }
                let k = y.shape()[1];
                let mut r = ArrayD::<f32>::zeros(y.raw_dim());
                for mut row in r.axis_iter_mut(Axis(0)) {
                    let e: Vec<f64> =
                        (0..k).map(|_| 1.0 + spread * rand::Rng::random_range(self.rng(), -1.0..1.0)).collect();
                    let s: f64 = e.iter().sum();
                    for (v, x) in row.iter_mut().zip(&e) {
                        *v = (x / s) as f32;
                    }
                }
                encrypt_lanes(self.key(), &y.view(), &r.view())
            }
        }
    }
}

/// Key owner → trainer: encrypts `data` chunk by chunk and hands each chunk to the trainer's builder
/// (which converts it key-free). `basis` is `None` for the first data set (the trainer chooses it).
pub fn encrypt_data(
    owner: &mut KeyOwner,
    data: &PlainData,
    setup: &EncryptionSetup,
    basis: Option<Basis>,
) -> Result<EncryptedDataset<f32>> {
    let n = data.inputs.shape().first().copied().unwrap_or(0);
    if n == 0 || data.targets.ndim() != 2 || data.targets.shape()[0] != n {
        return Err(Error::Invalid(format!(
            "inputs {:?} and targets {:?} must be [N, ...] and [N, K]",
            data.inputs.shape(),
            data.targets.shape()
        )));
    }
    let mut builder = DatasetBuilder::new(basis);
    let (lo, hi) = setup.input_noise;
    let step = setup.chunk.max(1);
    for start in (0..n).step_by(step) {
        let rows: Vec<usize> = (start..(start + step).min(n)).collect();
        let x = data.inputs.select(Axis(0), &rows);
        let y = data.targets.select(Axis(0), &rows);
        let cx = owner.encrypt_inputs(&x.view(), lo, hi)?;
        let cy = owner.encrypt_targets(&y, setup.targets)?;
        builder.push(&cx, &cy)?;
    }
    builder.finish()
}

/// The trainer's side: ciphertexts only.
#[derive(Debug)]
pub struct Trainer {
    alg: Encrypted,
    net: Net<Encrypted>,
    canaries: CoeffTensor<f32>,
}

impl Trainer {
    /// A trainer for data in `basis`: the network initialised with plaintext weights `w·I` from
    /// `init_seed` (the same initial weights as a plaintext run with that seed), carrying the owner's
    /// encrypted canaries.
    pub fn new(
        basis: Basis,
        input_shape: &[usize],
        specs: &[LayerSpec],
        init_seed: u64,
        canaries: &EncryptedTensor<f32>,
    ) -> Result<Self> {
        let alg = Encrypted::new(basis);
        let net = Net::new(&alg, input_shape, specs, &mut ChaCha8Rng::seed_from_u64(init_seed)).map_err(nn_err)?;
        Ok(Self { alg, net, canaries: CoeffTensor::from_encrypted(canaries, basis)? })
    }

    /// Trains with `more-nn`'s loop. `reveal` is the key owner's window (loss, metrics, checkpoints).
    pub fn fit<R: Reveal<Encrypted> + ?Sized>(
        &mut self,
        reveal: &R,
        train: &EncryptedDataset<f32>,
        val: Option<&EncryptedDataset<f32>>,
        cfg: &TrainConfig,
    ) -> Result<History> {
        let to =
            |d: &EncryptedDataset<f32>| Dataset::new(&self.alg, d.inputs.clone(), d.targets.clone()).map_err(nn_err);
        let train = to(train)?;
        let val = val.map(to).transpose()?;
        fit(&self.alg, reveal, &mut self.net, &train, val.as_ref(), cfg).map_err(nn_err)
    }

    /// The network (parameters are ciphertexts).
    pub fn net(&self) -> &Net<Encrypted> {
        &self.net
    }

    /// The algebra.
    pub fn algebra(&self) -> &Encrypted {
        &self.alg
    }

    /// The still-encrypted model, for the owner to decrypt or for encrypted inference.
    pub fn encrypted_model(&self, meta: ModelMeta) -> Result<EncryptedModel> {
        let spec = NetSpec { input_shape: self.net.input_shape().to_vec(), layers: self.net.specs().to_vec(), meta };
        Ok(EncryptedModel {
            basis: self.alg.basis(),
            canaries: self.canaries.clone(),
            params: self.net.params().into_iter().cloned().collect(),
            spec: serde_json::to_value(&spec).map_err(|e| Error::Invalid(format!("spec: {e}")))?,
        })
    }
}

fn nn_err(e: more_nn::Error) -> Error {
    match e {
        more_nn::Error::Core(c) => Error::Core(c),
        other => Error::Invalid(other.to_string()),
    }
}

impl EncryptedModel {
    /// The network description stored with the model.
    pub fn net_spec(&self) -> Result<NetSpec> {
        serde_json::from_value(self.spec.clone()).map_err(|e| Error::Invalid(format!("model spec: {e}")))
    }

    /// The network with the encrypted parameters, for encrypted inference (no key needed).
    pub fn net(&self) -> Result<(Encrypted, Net<Encrypted>)> {
        let spec = self.net_spec()?;
        let alg = Encrypted::new(self.basis);
        let zeros = spec
            .layers
            .iter()
            .map(|l| l.param_shapes().into_iter().map(|s| ArrayD::zeros(IxDyn(&s))).collect())
            .collect();
        let mut net = Net::from_params(&alg, &spec.input_shape, &spec.layers, zeros).map_err(nn_err)?;
        let slots = net.params_mut();
        if slots.len() != self.params.len() {
            return Err(Error::Invalid(format!("{} parameters for {} slots", self.params.len(), slots.len())));
        }
        for (slot, p) in slots.into_iter().zip(&self.params) {
            if slot.shape() != p.shape() {
                return Err(Error::ShapeMismatch {
                    op: "encrypted model",
                    left: slot.shape().to_vec(),
                    right: p.shape().to_vec(),
                });
            }
            *slot = p.clone();
        }
        Ok((alg, net))
    }

    /// Encrypted inference: inputs encrypted under the model's key (`[N, ...input_shape]`, 4 planes) to
    /// encrypted outputs. Inputs under another key are rejected (`Error::NotInSpan`).
    pub fn predict(&self, x: &EncryptedTensor<f32>) -> Result<CoeffTensor<f32>> {
        let (alg, net) = self.net()?;
        let x = CoeffTensor::from_encrypted(x, self.basis)?;
        net.predict(&alg, &x).map_err(nn_err)
    }
}

/// Key owner: checks the canaries (a wrong key fails with [`Error::WrongKey`]) and decrypts the weights
/// into an ordinary model.
pub fn decrypt_model(owner: &KeyOwner, model: &EncryptedModel) -> Result<Model> {
    owner.verify_canaries(&model.canaries)?;
    let spec = model.net_spec()?;
    let (_, net) = model.net()?;
    net.to_model(&OwnerReveal::new(owner), spec.meta).map_err(nn_err)
}

/// What [`train_encrypted`] returns.
#[derive(Debug)]
pub struct EncryptedRun {
    /// The decrypted model (key owner).
    pub model: Model,
    /// The still-encrypted model (usable for encrypted inference under the same key).
    pub encrypted: EncryptedModel,
    /// The training history (losses and metrics as revealed to the key owner).
    pub history: History,
    /// Seconds the key owner spent encrypting (and the trainer converting) the data.
    pub encrypt_seconds: f64,
}

/// Trains a network on encrypted data, task-generic: `key` encrypts `train` (and `val`) inputs and
/// targets; the network `specs` on `input_shape`, initialised from `init_seed`, is trained with `cfg`
/// (the same [`TrainConfig`] as plaintext training); the owner then checks the canaries and decrypts the
/// weights into a [`Model`] with `meta`.
#[allow(clippy::too_many_arguments)]
pub fn train_encrypted(
    key: &SecretKey,
    train: &PlainData,
    val: Option<&PlainData>,
    input_shape: &[usize],
    specs: &[LayerSpec],
    init_seed: u64,
    cfg: &TrainConfig,
    meta: ModelMeta,
    setup: &EncryptionSetup,
) -> Result<EncryptedRun> {
    let clock = std::time::Instant::now();
    let mut owner = KeyOwner::new(key.clone());
    let train_enc = encrypt_data(&mut owner, train, setup, None)?;
    let basis = train_enc.basis();
    let val_enc = val.map(|v| encrypt_data(&mut owner, v, setup, Some(basis))).transpose()?;
    let canaries = owner.encrypt_canaries::<f32>()?;
    let encrypt_seconds = clock.elapsed().as_secs_f64();

    let mut trainer = Trainer::new(basis, input_shape, specs, init_seed, &canaries)?;
    let reveal = OwnerReveal::new(&owner);
    let history = trainer.fit(&reveal, &train_enc, val_enc.as_ref(), cfg)?;
    let encrypted = trainer.encrypted_model(meta)?;
    let model = decrypt_model(&owner, &encrypted)?;
    Ok(EncryptedRun { model, encrypted, history, encrypt_seconds })
}
