//! # more-nn
//!
//! Neural networks that run unchanged on plaintext and on MORE ciphertexts.
//!
//! - [`Model`]: layers with plaintext weights plus [`ModelMeta`]; [`Model::forward_plain`] and
//!   [`Model::forward_encrypted`] run the same layer code — by default on the two coefficient planes
//!   `(α, β)` of [`coefficient`] (a conversion that uses the 2x2 structure), stacked as a batch twice as
//!   large, or ([`EncryptedForm::FourPlanes`]) on the four ciphertext planes stacked as a batch four times
//!   as large. Model files: see [`model`].
//! - [`layers`]: one file per layer family (dense, conv2d, average/max/global pooling, flatten,
//!   activations, softmax), each giving its spec, inference forward pass, training forward and backward
//!   passes, and whether it is ring-only or uses the 2x2 structure.
//! - [`algebra`]: the [`Algebra`] trait training is generic over; [`Plain`] implements it on `f32` arrays,
//!   `more-enctrain` on ciphertexts. [`train`]: the network, losses, optimizers and training loop.
//! - [`metrics`]: argmax and accuracy, the one implementation for every crate.
//! - [`idx`]: the gzip IDX loader for MNIST and the angiography frames.
#![deny(missing_docs)]

pub mod algebra;
pub mod coefficient;
pub mod error;
pub mod idx;
pub mod kernels;
pub mod layers;
pub mod metrics;
pub mod model;
pub mod networks;
pub mod plain;
pub mod train;

pub use algebra::{Algebra, PAD, Reveal};
pub use error::{Error, Result};
pub use layers::{Layer, LayerKind, LayerSpec};
pub use model::{EncryptedForm, Model, ModelMeta, OperationInfo, OutputKind, Preprocessing};
/// The function of an activation layer (`LayerSpec::Activation { function: Activation::Relu }`): the
/// project's one [`ElementFunction`] under the name network definitions use.
pub use more_core::ElementFunction as Activation;
pub use more_core::ElementFunction;
pub use plain::Plain;
