//! Attacks on MORE: what anyone holding ciphertexts — a curious server — can compute **without the key**.
//!
//! MORE encrypts `m` as `C = S·diag(m, r)·S⁻¹ = m·P + r·(I − P)` with the rank-1 projector
//! `P = S e₀ e₀ᵀ S⁻¹`. Everything below follows from that one line (sources: Kipnis & Hibshoosh 2012;
//! Tsaban & Lifshitz 2015; Vizitiu et al. 2019, 2020 — see `docs/attacks.md`):
//!
//! 1. [`eigen`] — **one ciphertext leaks its eigenvalues**: `trace C = m + r`, `det C = m·r`, so
//!    [`eigen::eigenvalues`] returns the unordered pair `{m, r}`.
//! 2. [`basis`] — **shared eigenbasis, ciphertext only**: the traceless part of every ciphertext under one key
//!    is a multiple of the same matrix `P − I/2`. [`Eigenbasis::estimate`] finds it from the ciphertexts alone
//!    and splits every ciphertext into its two lanes with `tr(P·C)` and `tr((I − P)·C)`: the whole data set in
//!    two candidate versions, the image and the noise. [`lane`] settles which is which (one bit for the whole
//!    key) by which lane looks like data, with a confidence, or from one known value.
//! 3. [`relation`] — **Tsaban–Lifshitz**: two ciphertexts under one key satisfy `C₂ = α·C₁ + β·I`, hence
//!    `m₂ = α·m₁ + β`: one known plaintext decrypts every other ciphertext.
//! 4. [`known`] — **known-plaintext key recovery**: from one pair `(m, C)`, `C − m·I = (r − m)(I − P)` gives
//!    `P` and an equivalent [`SecretKey`](crate::SecretKey) that decrypts (and encrypts) everything.
//! 5. [`leak`] — **zero and equality tests**: `det(C − b·I) = (m − b)(r − b)` vanishes iff `m = b` (or the
//!    random lane happens to equal `b`): the ink mask of an encrypted digit, without any key.
//! 6. [`model`] — encrypted **model weights and outputs** fall to the same attacks: the logits of an encrypted
//!    answer and its argmax, a model trained on encrypted data and its shadow.
//!
//! [`recover`] ties 2 and the lane choice together for whole data sets ([`recover::ciphertext_only`]).
//!
//! ```
//! use more_core::attack::{self, DataPrior};
//! use more_core::{KeyOptions, SecretKey};
//! use ndarray::Array2;
//!
//! // A 28x28 "digit": a white bar on black, 8-bit levels in [0, 1], encrypted as the browser does.
//! let bar = |y: usize, x: usize| (10..18).contains(&x) && (4..24).contains(&y);
//! let img = Array2::from_shape_fn((28, 28), |(y, x)| if bar(y, x) { 1.0f32 } else { 0.0 });
//! let key = SecretKey::generate(KeyOptions::default()).unwrap();
//! let ct = key.encrypt_tensor(&img.view().into_dyn()).unwrap();
//!
//! // The server, without the key: eigenbasis, lane choice, every pixel.
//! let rec = attack::ciphertext_only(&[&ct], &DataPrior::image_8bit(0.0, 1.0, 28, 28)).unwrap();
//! let stolen = rec.decrypt(&ct);
//! assert!(stolen.iter().zip(img.iter()).all(|(a, &b)| (a - f64::from(b)).abs() < 1e-4));
//! assert_eq!(stolen.shape(), &[28, 28]);
//! ```
//!
//! All computations are in `f64` whatever the plane type (`f32` or `f64`); the recovered values are as
//! accurate as a legitimate decryption of the same planes (error `≈ κ(S)²·ε·max(|m|, |r|)`).

pub mod basis;
pub mod eigen;
pub mod error;
pub mod known;
pub mod lane;
pub mod leak;
pub mod model;
pub mod recover;
pub mod relation;

pub use basis::{Eigenbasis, Lane};
pub use eigen::{LanePair, eigenvalues};
pub use error::{AttackError, Result};
pub use known::{known_plaintext_basis, recover_key};
pub use lane::{DataPrior, LaneLooks, LaneVerdict};
pub use leak::{DEFAULT_REL_TOL, ZeroTest, equality_test, ink_mask, zero_test};
pub use model::{OutputLeak, leak_outputs};
pub use recover::{Recovery, ciphertext_only, with_known_value};
pub use relation::{LinearRelation, decrypt_with_known};
