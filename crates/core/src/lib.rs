//! # more-core
//!
//! The MORE scheme (Matrix Operation for Randomization or Encryption, Kipnis & Hibshoosh 2012) as used by
//! Vizitiu et al. (2019, 2020) to run neural networks on encrypted data.
//!
//! A real number `m` is encrypted as the 2x2 matrix `C = S·diag(m, r)·S⁻¹` with a secret invertible `S`
//! and a fresh random `r`. Sums, products and inverses of ciphertexts under one key decrypt to sums,
//! products and inverses of the messages, so polynomial (ring-only) computations run on ciphertexts
//! unchanged. Because a ciphertext is a 2x2 matrix with eigenvalues `{m, r}`, any function can also be
//! applied to it through its eigenvalues — which is fast and exactly why MORE is **not secure**: anyone
//! can read `{m, r}` from `trace` and `det` (see the `attack` module and `docs/`).
//!
//! ```
//! use more_core::{KeyOptions, ElementFunction, SecretKey};
//! let key = SecretKey::from_seed(7, KeyOptions::default()).unwrap();
//! let (a, b) = (key.encrypt(1.5).unwrap(), key.encrypt(-2.0).unwrap());
//! assert!((key.decrypt(&(a * b)) + 3.0).abs() < 1e-12);
//! let s = a.apply(ElementFunction::Sigmoid).unwrap();
//! assert!((key.decrypt(&s) - 1.0 / (1.0 + (-1.5f64).exp())).abs() < 1e-12);
//! ```
#![deny(missing_docs)]
#![doc(test(attr(deny(warnings))))]

pub mod attack;
pub mod cipher;
pub mod codec;
mod dtype;
pub mod error;
pub mod function;
pub mod key;
pub mod mat2;
pub mod real;
pub mod reference;
pub mod spectral;
pub mod tensor;

pub use cipher::Ciphertext;
pub use codec::{AnyTensor, decode, decode_any, encode};
pub use dtype::DType;
pub use error::{Error, Result};
pub use function::ElementFunction;
pub use key::{KeyOptions, NoiseRange, SecretKey};
pub use real::Real;
pub use tensor::EncryptedTensor;
