//! Task-generic helpers around [`train_encrypted`] for the CLI's tasks (MNIST, angiography, WBC):
//!
//! - [`Task`]: one task's data, network, seed, training configuration and encryption choices;
//!   [`compare`] trains it on plaintext and on encrypted data with the same everything, in one run, and
//!   times both (wall time per epoch from the training loop, process CPU time per epoch);
//!   [`train_task`] trains it on encrypted data only (`more train <task> --encrypted`).
//! - Class weighting for imbalanced classification ([`balanced_class_weights`],
//!   [`PlainData::reweighted`]): the key owner resamples the training rows so each class's total weight
//!   matches the requested one. Its expected gradient is the class-weighted cross-entropy's (up to one
//!   overall factor); it is applied to the plaintext data *before* encryption, so the plaintext and the
//!   encrypted run see the very same rows, and the trainer's loss stays the ordinary cross-entropy
//!   (ring-only apart from its softmax).
//! - Timed inference with a plaintext model ([`predict_plain`]) and with the still-encrypted model
//!   ([`predict_encrypted`]) on the same engine (`Net::predict`).

use std::time::Instant;

use cpu_time::ProcessTime;
use ndarray::{ArrayD, Axis};
use rand::SeedableRng;
use rand::seq::SliceRandom;
use rand_chacha::ChaCha8Rng;

use more_core::SecretKey;
use more_nn::metrics::argmax;
use more_nn::train::{Dataset, History, Net, TrainConfig, fit};
use more_nn::{LayerSpec, Model, ModelMeta, Plain};

use crate::coeff::CoeffTensor;
use crate::error::{Error, Result};
use crate::model_file::EncryptedModel;
use crate::owner::KeyOwner;
use crate::train::{EncryptedRun, EncryptionSetup, PlainData, train_encrypted};

/// Rows per class of one-hot (or probability) targets `[N, K]`, by argmax.
pub fn class_counts(targets: &ArrayD<f32>) -> Result<Vec<usize>> {
    if targets.ndim() != 2 {
        return Err(Error::Invalid(format!("targets must be [N, K], got {:?}", targets.shape())));
    }
    let mut counts = vec![0usize; targets.shape()[1]];
    for row in targets.axis_iter(Axis(0)) {
        counts[argmax(row.iter())] += 1;
    }
    Ok(counts)
}

/// The usual "balanced" class weights `N / (K·n_c)` (classes without rows get weight 0). For the
/// angiography split (625 LCA / 375 RCA): `[0.8, 1.333]`.
pub fn balanced_class_weights(targets: &ArrayD<f32>) -> Result<Vec<f64>> {
    let counts = class_counts(targets)?;
    let n: usize = counts.iter().sum();
    let k = counts.iter().filter(|&&c| c > 0).count().max(1);
    Ok(counts.iter().map(|&c| if c == 0 { 0.0 } else { n as f64 / (k * c) as f64 }).collect())
}

impl PlainData {
    /// Rows.
    pub fn rows(&self) -> usize {
        self.inputs.shape().first().copied().unwrap_or(0)
    }

    /// Class weighting by resampling (key owner, before encryption): every row of class `c` appears
    /// `⌊m_c⌋` times, and a seeded random `frac(m_c)` share of them once more, with
    /// `m_c = weights[c] / min_c weights[c]` over the classes present. The class totals are then
    /// proportional to `weights[c]·n_c` — the class-weighted cross-entropy's — so its expected gradient is
    /// that loss's; rows are grouped by class (training shuffles them). With [`balanced_class_weights`]
    /// the classes end up (nearly) equally frequent: 625/375 → 625/625.
    pub fn reweighted(&self, weights: &[f64], seed: u64) -> Result<PlainData> {
        let counts = class_counts(&self.targets)?;
        if weights.len() != counts.len() || weights.iter().any(|w| !w.is_finite() || *w < 0.0) {
            return Err(Error::Invalid(format!(
                "{} class weights (finite, ≥ 0) needed, got {weights:?}",
                counts.len()
            )));
        }
        let present: Vec<f64> =
            weights.iter().zip(&counts).filter(|(w, c)| **c > 0 && **w > 0.0).map(|(w, _)| *w).collect();
        let min = present.iter().copied().fold(f64::INFINITY, f64::min);
        if !min.is_finite() {
            return Err(Error::Invalid("no class with rows has a positive weight".into()));
        }
        let mut by_class: Vec<Vec<usize>> = vec![Vec::new(); counts.len()];
        for (i, row) in self.targets.axis_iter(Axis(0)).enumerate() {
            by_class[argmax(row.iter())].push(i);
        }
        let mut rng = ChaCha8Rng::seed_from_u64(seed);
        let mut rows = Vec::new();
        for (c, members) in by_class.iter().enumerate() {
            if members.is_empty() || weights[c] == 0.0 {
                continue;
            }
            let m = weights[c] / min;
            let whole = m.floor() as usize;
            for _ in 0..whole {
                rows.extend_from_slice(members);
            }
            let extra = ((m - whole as f64) * members.len() as f64).round() as usize;
            let mut pick = members.clone();
            pick.shuffle(&mut rng);
            rows.extend_from_slice(&pick[..extra.min(pick.len())]);
        }
        Ok(PlainData { inputs: self.inputs.select(Axis(0), &rows), targets: self.targets.select(Axis(0), &rows) })
    }
}

/// One task: what both runs of [`compare`] share.
#[derive(Debug, Clone)]
pub struct Task {
    /// Input shape without the batch axis (e.g. `[1, 128, 128]`).
    pub input_shape: Vec<usize>,
    /// The network.
    pub specs: Vec<LayerSpec>,
    /// Training data (already class-weighted / augmented by the owner if wanted).
    pub train: PlainData,
    /// Validation data (selection and early stopping), if any.
    pub val: Option<PlainData>,
    /// Seed of the initial weights (the loop's own seed is `cfg.seed`).
    pub init_seed: u64,
    /// The training configuration (the same [`TrainConfig`] as plaintext training).
    pub cfg: TrainConfig,
    /// The key owner's encryption choices.
    pub setup: EncryptionSetup,
}

/// `cfg` for one side of a comparison: parameter snapshots (if any) go to the subdirectory `side`
/// (`plain` or `encrypted`), so both runs of one task can be compared epoch by epoch.
fn side_config(cfg: &TrainConfig, side: &str) -> TrainConfig {
    TrainConfig { snapshots: cfg.snapshots.as_ref().map(|d| d.join(side)), ..cfg.clone() }
}

/// The encrypted side of a task: [`train_encrypted`] plus process CPU time per epoch.
#[derive(Debug)]
pub struct TimedRun {
    /// Models and history.
    pub run: EncryptedRun,
    /// Process CPU time per epoch (all threads, training and validation), excluding the one-time data
    /// encryption (`run.encrypt_seconds`, wall time, subtracted).
    pub cpu_seconds_per_epoch: f64,
}

/// Trains `task` on data encrypted under `key` (`more train <task> --encrypted`); `meta` is the
/// decrypted model's metadata.
pub fn train_task(task: &Task, key: &SecretKey, meta: ModelMeta) -> Result<TimedRun> {
    let cfg = side_config(&task.cfg, "encrypted");
    let cpu = ProcessTime::now();
    let run = train_encrypted(
        key,
        &task.train,
        task.val.as_ref(),
        &task.input_shape,
        &task.specs,
        task.init_seed,
        &cfg,
        meta,
        &task.setup,
    )?;
    let total = cpu.elapsed().as_secs_f64();
    let cpu_seconds_per_epoch = (total - run.encrypt_seconds).max(0.0) / run.history.epochs.len().max(1) as f64;
    Ok(TimedRun { run, cpu_seconds_per_epoch })
}

/// The plaintext side of a task: the trained model, its history, CPU time per epoch.
#[derive(Debug)]
pub struct PlainRun {
    /// The model.
    pub model: Model,
    /// The history.
    pub history: History,
    /// Process CPU time per epoch (all threads, training and validation).
    pub cpu_seconds_per_epoch: f64,
}

/// Trains `task` on plaintext with the same loop (`more_nn::train::fit`).
pub fn train_plain(task: &Task, meta: ModelMeta) -> Result<PlainRun> {
    let nn = |e: more_nn::Error| Error::Invalid(e.to_string());
    let train = Dataset::new(&Plain, task.train.inputs.clone(), task.train.targets.clone()).map_err(nn)?;
    let val =
        task.val.as_ref().map(|v| Dataset::new(&Plain, v.inputs.clone(), v.targets.clone())).transpose().map_err(nn)?;
    let mut net =
        Net::new(&Plain, &task.input_shape, &task.specs, &mut ChaCha8Rng::seed_from_u64(task.init_seed)).map_err(nn)?;
    let cpu = ProcessTime::now();
    let cfg = side_config(&task.cfg, "plain");
    let history = fit(&Plain, &Plain, &mut net, &train, val.as_ref(), &cfg).map_err(nn)?;
    let cpu_seconds_per_epoch = cpu.elapsed().as_secs_f64() / history.epochs.len().max(1) as f64;
    Ok(PlainRun { model: net.to_model(&Plain, meta).map_err(nn)?, history, cpu_seconds_per_epoch })
}

/// Plaintext and encrypted training of one task in one run.
#[derive(Debug)]
pub struct Comparison {
    /// Plaintext run.
    pub plain: PlainRun,
    /// Encrypted run.
    pub encrypted: TimedRun,
}

/// Trains `task` on plaintext (model metadata `plain_meta`), then on data encrypted under `key`
/// (`enc_meta`): the same network, initial weights, seed and hyper-parameters.
pub fn compare(task: &Task, key: &SecretKey, plain_meta: ModelMeta, enc_meta: ModelMeta) -> Result<Comparison> {
    let plain = train_plain(task, plain_meta)?;
    let encrypted = train_task(task, key, enc_meta)?;
    Ok(Comparison { plain, encrypted })
}

/// Mean training wall time per epoch (training batches only), seconds.
pub fn mean_epoch_seconds(h: &History) -> f64 {
    h.epochs.iter().map(|e| e.train_seconds).sum::<f64>() / h.epochs.len().max(1) as f64
}

/// Plaintext inference of `model` over `x` in batches of `batch`, with the engine the encrypted model runs
/// on (`Net::predict`): (outputs, seconds).
pub fn predict_plain(model: &Model, x: &ArrayD<f32>, batch: usize) -> Result<(ArrayD<f32>, f64)> {
    let nn = |e: more_nn::Error| Error::Invalid(e.to_string());
    let net = Net::from_model(&Plain, model).map_err(nn)?;
    let t = Instant::now();
    let mut outs = Vec::new();
    for chunk in x.axis_chunks_iter(Axis(0), batch.max(1)) {
        outs.push(net.predict(&Plain, &chunk.to_owned()).map_err(nn)?);
    }
    let secs = t.elapsed().as_secs_f64();
    Ok((concat(&outs)?, secs))
}

/// Encrypted inference with the still-encrypted `model` over `x`: the owner encrypts each batch (input
/// noise `U[0, 1)`), the model runs on ciphertexts, the owner decrypts. (Decrypted outputs, seconds of the
/// encrypted forward passes only.)
pub fn predict_encrypted(
    owner: &mut KeyOwner,
    model: &EncryptedModel,
    x: &ArrayD<f32>,
    batch: usize,
) -> Result<(ArrayD<f32>, f64)> {
    let mut outs = Vec::new();
    let mut secs = 0.0;
    for chunk in x.axis_chunks_iter(Axis(0), batch.max(1)) {
        let c = owner.encrypt_inputs(&chunk, 0.0, 1.0)?;
        let t = Instant::now();
        let y = model.predict(&c)?;
        secs += t.elapsed().as_secs_f64();
        outs.push(owner.decrypt(&y));
    }
    Ok((concat(&outs)?, secs))
}

fn concat(parts: &[ArrayD<f32>]) -> Result<ArrayD<f32>> {
    let views: Vec<_> = parts.iter().map(|o| o.view()).collect();
    ndarray::concatenate(Axis(0), &views).map_err(|e| Error::Invalid(format!("concatenate: {e}")))
}

/// Largest |weight| of the decrypted model (message lane) and of the shadow model (noise lane).
pub fn lane_maxima(owner: &KeyOwner, model: &EncryptedModel) -> (f64, f64) {
    let max = |f: &dyn Fn(&CoeffTensor<f32>) -> ArrayD<f32>| {
        model.params.iter().map(|p| f(p).iter().fold(0.0f32, |m, v| m.max(v.abs()))).fold(0.0f32, f32::max)
    };
    (f64::from(max(&|p| owner.decrypt(p))), f64::from(max(&|p| owner.decrypt_noise(p))))
}
