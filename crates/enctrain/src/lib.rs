//! # more-enctrain
//!
//! Training neural networks on MORE-encrypted data, with the same layers, losses, optimizers and loop as
//! plaintext training (`more_nn::train`); measurements and design in `docs/encrypted-training.md`.
//!
//! - [`basis`]: the public reference `X̂` chosen key-free from the data's ciphertexts.
//! - [`coeff`]: encrypted tensors in coefficient form `α·I + β·X̂` and their algebra, each operation
//!   documented as ring-only or as using the 2x2 structure.
//! - [`owner`]: the key owner's side — encrypting inputs and labels, known-answer canaries, decrypting
//!   losses, metrics and weights.
//! - [`train`]: the trainer (no key) and [`train::train_encrypted`] (both roles in one call).
//! - [`upload`]: a training job as one request body (a JSON header line and the wire-format data set),
//!   and the encrypted losses a remote trainer reports, as text.
//! - `task` (not on wasm32): task-generic helpers for the CLI's tasks — plaintext vs encrypted comparison, class
//!   weighting, timed plaintext and encrypted inference.
#![deny(missing_docs)]

pub mod algebra;
pub mod basis;
pub mod coeff;
pub mod dataset;
pub mod error;
pub mod model_file;
pub mod owner;
#[cfg(not(target_arch = "wasm32"))]
pub mod task;
pub mod train;
pub mod upload;

pub use basis::Basis;
pub use coeff::CoeffTensor;
pub use error::{Error, Result};
