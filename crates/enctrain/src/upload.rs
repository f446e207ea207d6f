//! A training job as one request body, for a trainer that runs elsewhere (the server) and never holds the
//! key, and the encrypted losses it reports back.
//!
//! Body layout: one line of JSON ([`JobRequest`]: the network and hyper-parameters) ended by `\n`, then three
//! tensors in the `more-core` wire format, each preceded by its length as a little-endian `u64`: the
//! encrypted inputs `[N, ...input_shape]`, the encrypted targets `[N, outputs]` and the key owner's
//! canaries `[16]` ([`crate::owner::CANARIES`]). All three are under one key; the trainer converts them
//! key-free into coefficient form ([`DatasetBuilder`]), which rejects tensors under another key.
//!
//! A loss the trainer computes on ciphertexts (`Loss::value_tensor`) travels as text: the base64 of its
//! wire-format encoding ([`loss_to_text`]); only the key owner can decrypt it ([`loss_from_text`]).

use base64::Engine as _;
use base64::engine::general_purpose::STANDARD;
use serde::{Deserialize, Serialize};

use more_core::{EncryptedTensor, SecretKey, decode, encode};
use more_nn::train::{Loss, OptimizerConfig, TrainConfig};

use crate::coeff::CoeffTensor;
use crate::dataset::{DatasetBuilder, EncryptedDataset};
use crate::error::{Error, Result};
use crate::owner::CANARIES;

/// Media type of a training-job body.
pub const MEDIA_TYPE: &str = "application/x-more-training-job";

/// Longest accepted header line, bytes.
pub const MAX_HEADER: usize = 4096;

/// The optimizer of a training job.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum OptimizerKind {
    /// Adam (its square root and reciprocal use the 2x2 structure on ciphertexts).
    Adam,
    /// SGD with momentum 0.9 (ring-only on ciphertexts).
    Sgd,
}

/// The header line: which network to train and how.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct JobRequest {
    /// Id of one of the networks the trainer offers (e.g. `wbc-mlp`).
    pub network: String,
    /// Passes over the data (fixed: a trainer without the key cannot stop early).
    pub epochs: usize,
    /// Mini-batch size.
    pub batch_size: usize,
    /// Learning rate.
    pub lr: f32,
    /// Learning-rate factor per epoch.
    #[serde(default = "one")]
    pub lr_decay: f32,
    /// Optimizer.
    #[serde(default = "adam")]
    pub optimizer: OptimizerKind,
    /// Seed of the initial weights and of the shuffling.
    #[serde(default)]
    pub seed: u64,
}

impl JobRequest {
    /// The training configuration of this request with the network's `loss`: fixed epochs, no
    /// validation, early stopping or checkpoints (a trainer without the key cannot judge its progress).
    /// The key owner's plaintext run for comparison uses the same.
    pub fn train_config(&self, loss: Loss, classification: bool) -> TrainConfig {
        TrainConfig {
            epochs: self.epochs,
            batch_size: self.batch_size,
            seed: self.seed,
            loss,
            optimizer: match self.optimizer {
                OptimizerKind::Adam => OptimizerConfig::adam(self.lr),
                OptimizerKind::Sgd => OptimizerConfig::Sgd { lr: self.lr, momentum: 0.9 },
            },
            lr_decay: self.lr_decay,
            patience: None,
            augment_shift: 0,
            classification,
            progress: false,
            eval_batch: 500,
            checkpoint: None,
            snapshots: None,
        }
    }
}

fn one() -> f32 {
    1.0
}

fn adam() -> OptimizerKind {
    OptimizerKind::Adam
}

/// A parsed body: the request, the data set in coefficient form and the canaries.
#[derive(Debug, Clone)]
pub struct Upload {
    /// The header.
    pub request: JobRequest,
    /// Inputs and targets.
    pub data: EncryptedDataset<f32>,
    /// The key owner's canaries (four planes, as received).
    pub canaries: EncryptedTensor<f32>,
}

/// Builds a body (key owner).
pub fn encode_body(
    request: &JobRequest,
    inputs: &EncryptedTensor<f32>,
    targets: &EncryptedTensor<f32>,
    canaries: &EncryptedTensor<f32>,
) -> Result<Vec<u8>> {
    let mut out = serde_json::to_vec(request).map_err(|e| Error::Invalid(format!("job header: {e}")))?;
    out.push(b'\n');
    for t in [inputs, targets, canaries] {
        let bytes = encode(t);
        out.extend_from_slice(&(bytes.len() as u64).to_le_bytes());
        out.extend_from_slice(&bytes);
    }
    Ok(out)
}

/// Parses only the header line: (request, offset of the first tensor).
pub fn decode_header(body: &[u8]) -> Result<(JobRequest, usize)> {
    let end = body.iter().take(MAX_HEADER).position(|&b| b == b'\n').ok_or_else(|| {
        Error::Invalid(format!("no header line (JSON ended by a newline) in the first {MAX_HEADER} bytes"))
    })?;
    let request = serde_json::from_slice(&body[..end]).map_err(|e| Error::Invalid(format!("job header: {e}")))?;
    Ok((request, end + 1))
}

/// Parses a body (trainer): the header, then inputs `[N, ...input_shape]`, targets `[N, outputs]` and the
/// canaries, each decoded (finite values only) and checked; the data are converted key-free into
/// coefficient form, which rejects tensors under different keys.
pub fn decode_body(body: &[u8], input_shape: &[usize], outputs: usize) -> Result<Upload> {
    let (request, mut pos) = decode_header(body)?;
    let mut next = |what: &str| -> Result<EncryptedTensor<f32>> {
        let bad = |m: String| Error::Invalid(format!("{what}: {m}"));
        let end = pos.checked_add(8).filter(|&e| e <= body.len()).ok_or_else(|| bad("truncated".into()))?;
        let len = u64::from_le_bytes(body[pos..end].try_into().expect("8 bytes"));
        let len = usize::try_from(len).map_err(|_| bad("length overflows".into()))?;
        let stop = end.checked_add(len).filter(|&e| e <= body.len()).ok_or_else(|| bad("truncated".into()))?;
        pos = stop;
        decode::<f32>(&body[end..stop], len).map_err(|e| bad(e.to_string()))
    };
    let inputs = next("inputs")?;
    let targets = next("targets")?;
    let canaries = next("canaries")?;
    if pos != body.len() {
        return Err(Error::Invalid(format!("{} bytes after the canaries", body.len() - pos)));
    }
    let (si, st) = (inputs.shape(), targets.shape());
    if si.len() != input_shape.len() + 1 || si[1..] != *input_shape || si[0] == 0 {
        return Err(Error::Invalid(format!("inputs have shape {si:?}, the network needs [N, {input_shape:?}...]")));
    }
    if st != [si[0], outputs] {
        return Err(Error::Invalid(format!("targets have shape {st:?}, the network needs [{}, {outputs}]", si[0])));
    }
    if canaries.shape() != [CANARIES] {
        return Err(Error::Invalid(format!("canaries have shape {:?}, expected [{CANARIES}]", canaries.shape())));
    }
    let mut builder = DatasetBuilder::new(None);
    builder.push(&inputs, &targets)?;
    let basis = builder.basis().ok_or_else(|| Error::Invalid("no basis".into()))?;
    CoeffTensor::from_encrypted(&canaries, basis)?;
    Ok(Upload { request, data: builder.finish()?, canaries })
}

/// A ciphertext computed by the trainer, as text (base64 of its wire format).
pub fn loss_to_text(t: &CoeffTensor<f32>) -> Result<String> {
    Ok(STANDARD.encode(encode(&t.to_encrypted()?)))
}

/// Key owner: decrypts [`loss_to_text`]'s text (its first element).
pub fn loss_from_text(key: &SecretKey, text: &str) -> Result<f64> {
    let bytes = STANDARD.decode(text).map_err(|e| Error::Invalid(format!("loss is not base64: {e}")))?;
    let t: EncryptedTensor<f32> = decode(&bytes, 1 << 20)?;
    let v = key.decrypt_tensor(&t);
    v.iter().next().map(|&x| f64::from(x)).ok_or_else(|| Error::Invalid("empty loss tensor".into()))
}

#[cfg(test)]
mod tests {
    use ndarray::{ArrayD, IxDyn};

    use super::*;
    use crate::owner::KeyOwner;

    fn request() -> JobRequest {
        JobRequest {
            network: "wbc-mlp".into(),
            epochs: 2,
            batch_size: 4,
            lr: 1e-3,
            lr_decay: 1.0,
            optimizer: OptimizerKind::Adam,
            seed: 3,
        }
    }

    fn body(owner: &mut KeyOwner, n: usize) -> Vec<u8> {
        let x = ArrayD::from_shape_fn(IxDyn(&[n, 7]), |i| (i[0] * 7 + i[1]) as f32 * 0.01);
        let y = ArrayD::from_shape_fn(IxDyn(&[n, 6]), |i| (i[0] + i[1]) as f32 * 0.1);
        let cx = owner.encrypt_inputs(&x.view(), -2.0, 2.0).unwrap();
        let cy = owner.encrypt_inputs(&y.view(), -1.0, 1.0).unwrap();
        let c = owner.encrypt_canaries::<f32>().unwrap();
        encode_body(&request(), &cx, &cy, &c).unwrap()
    }

    #[test]
    fn body_round_trips_and_bad_bodies_are_refused() {
        let key = SecretKey::from_seed(5, Default::default()).unwrap();
        let mut owner = KeyOwner::with_seed(key.clone(), 1);
        let b = body(&mut owner, 10);
        let up = decode_body(&b, &[7], 6).unwrap();
        assert_eq!(up.request, request());
        assert_eq!(up.data.len(), 10);
        owner.verify_canaries(&CoeffTensor::from_encrypted(&up.canaries, up.data.basis()).unwrap()).unwrap();
        // Wrong network shapes, truncation, trailing bytes, no header.
        assert!(decode_body(&b, &[8], 6).is_err());
        assert!(decode_body(&b, &[7], 5).is_err());
        assert!(decode_body(&b[..b.len() - 1], &[7], 6).is_err());
        let mut long = b.clone();
        long.push(0);
        assert!(decode_body(&long, &[7], 6).is_err());
        assert!(decode_body(&b[b.iter().position(|&c| c == b'\n').unwrap() + 1..], &[7], 6).is_err());
        // Targets under another key are not in the inputs' span.
        let other = body(&mut KeyOwner::with_seed(SecretKey::from_seed(6, Default::default()).unwrap(), 1), 10);
        let (_, start) = decode_header(&b).unwrap();
        let split = |b: &[u8]| {
            let len = u64::from_le_bytes(b[start..start + 8].try_into().unwrap()) as usize;
            start + 8 + len
        };
        let mut mixed = b[..split(&b)].to_vec();
        mixed.extend_from_slice(&other[split(&other)..]);
        assert!(decode_body(&mixed, &[7], 6).is_err());
    }

    #[test]
    fn loss_text_decrypts_with_the_key_only() {
        let key = SecretKey::from_seed(9, Default::default()).unwrap();
        let mut owner = KeyOwner::with_seed(key.clone(), 2);
        let x = ArrayD::from_elem(IxDyn(&[4, 1]), 0.75f32);
        let c = owner.encrypt_inputs(&x.view(), 0.0, 1.0).unwrap();
        let basis = crate::Basis::from_ciphertexts(&c).unwrap();
        let t = CoeffTensor::from_encrypted(&c, basis).unwrap().rows(&[0]);
        let text = loss_to_text(&t).unwrap();
        assert!((loss_from_text(&key, &text).unwrap() - 0.75).abs() < 1e-4);
        let other = SecretKey::from_seed(10, Default::default()).unwrap();
        assert!((loss_from_text(&other, &text).unwrap() - 0.75).abs() > 1e-3);
    }
}
