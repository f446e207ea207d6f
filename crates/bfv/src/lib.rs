//! A lattice-based scheme beside MORE: BFV (the `fhe` crate, fhe.rs) at 128-bit classical security, for
//! one MNIST network and one regression network (the whole-body circulation surrogate, [`regression`]).
//!
//! This crate adds no cryptography of its own. It fixes the parameters ([`params`], with the table row of
//! the HomomorphicEncryption.org standard they come from), the packing of inputs, weights and outputs into
//! SIMD slots ([`layout`]), the quantized network and its exact integer simulation ([`network`]), the
//! client and server sides ([`scheme`]), size-limited messages that check the parameters before anything
//! runs ([`wire`]) and the model file ([`model`]).
//!
//! Unlike MORE, a BFV ciphertext hides its plaintext under the ring-LWE assumption: the server computes
//! with ring operations only and learns nothing; the price is measured in `docs/bfv.md`.

pub mod batch;
pub mod layout;
pub mod model;
pub mod network;
pub mod params;
pub mod regression;
pub mod scheme;
pub mod wire;

pub use batch::{BatchEvaluator, BatchKeys};
pub use model::{BfvModel, BfvRegressionModel};
pub use network::{FloatNet, QuantizedNet, Ranges};
pub use regression::{RegressionEvaluator, RegressionNet, RegressionScaling};
pub use scheme::{Client, EvalKeys, Evaluator};

/// Errors of this crate.
#[derive(Debug, thiserror::Error)]
pub enum BfvError {
    /// Bytes that are not a valid message (size, framing, fhe.rs parse).
    #[error("invalid BFV message: {0}")]
    Wire(String),
    /// Keys, ciphertexts or a model made for other parameters.
    #[error("wrong BFV parameters: {0}")]
    Parameters(String),
    /// A model file or network that does not fit.
    #[error("BFV model: {0}")]
    Model(String),
    /// Bad input values or counts.
    #[error("BFV input: {0}")]
    Input(String),
    /// An fhe.rs operation failed.
    #[error("BFV: {0}")]
    Fhe(String),
    /// The caller asked a long evaluation to stop.
    #[error("BFV evaluation stopped before the end")]
    Stopped,
}

/// Result with [`BfvError`].
pub type Result<T, E = BfvError> = std::result::Result<T, E>;
