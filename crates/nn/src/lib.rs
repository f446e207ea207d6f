//! # more-nn
//!
//! Neural networks that run unchanged on plaintext and on MORE ciphertexts (DESIGN §5).
//!
//! - [`Model`]: layers with plaintext weights plus [`ModelMeta`]; [`Model::forward_plain`] and
//!   [`Model::forward_encrypted`] run the same layer code — a linear layer runs one GEMM on the four
//!   ciphertext planes stacked as a batch four times as large. Model files: see [`model`].
//! - [`layer`]: dense, conv2d, average and max pooling, flatten, activations, softmax — each documented as
//!   ring-only or as using the 2x2 structure.
//! - [`algebra`]: the [`Algebra`] trait training is generic over; [`Plain`] implements it on `f32` arrays,
//!   `more-enctrain` on ciphertexts.
//! - [`idx`]: the gzip IDX loader for MNIST and the angiography frames.
#![deny(missing_docs)]

pub mod algebra;
pub mod error;
pub mod idx;
pub mod kernels;
pub mod layer;
pub mod model;
pub mod networks;
pub mod plain;
pub mod train;

pub use algebra::{Algebra, Lanewise, PAD, Reveal};
pub use error::{Error, Result};
pub use layer::{Activation, Conv2d, Dense, Layer, LayerSpec, Pool};
pub use model::{Model, ModelMeta, OperationInfo, OutputKind, Preprocessing};
pub use plain::Plain;
