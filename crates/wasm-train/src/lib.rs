//! # more-wasm-train
//!
//! The browser's side of training on encrypted data through the server (`web/train.html`), compiled to
//! WebAssembly. The page is the data owner:
//!
//! - [`wbc`]: patients of the whole-body circulation model (Latin-hypercube parameters, one simulation
//!   each, run in Web Workers), split into training and held-out rows, standardised like the CLI does;
//! - [`mnist`]: the labelled digits the server offers as sample data;
//! - [`owner`]: a fresh key from the browser's CSPRNG, the encrypted training-job body, decryption of the
//!   server's encrypted losses and of the trained model (after the known-answer canaries check);
//! - [`plain`]: the same network trained here on the same plaintext with the same seed and
//!   hyper-parameters, one epoch per call, for the comparison;
//! - [`model`]: a trained (plaintext) model: predictions, accuracy, held-out errors, its weights;
//! - [`attack`]: what the server can read from the encrypted model it trained, without the key.
//!
//! It is a separate module from the main page's `more-wasm`, loaded only by the training page. It has no
//! cryptography of its own: everything is `more-core`, `more-nn`, `more-enctrain` and `more-hemo`.
//!
//! Structured values cross the boundary as JavaScript objects (through `serde-wasm-bindgen`): the training
//! request comes in as `{network, epochs, batch_size, lr, ...}` and reports go out as plain objects; bulk
//! numbers cross as typed arrays. Each exported function that takes or returns such an object has a typed
//! Rust twin (e.g. [`owner::TrainingOwner::encrypt_job`]) that native code and tests call.
#![deny(missing_docs)]

pub mod attack;
pub mod mnist;
pub mod model;
pub mod owner;
pub mod plain;
pub mod wbc;

use serde::Serialize;
use serde::de::DeserializeOwned;
use wasm_bindgen::JsValue;

/// An error for JavaScript: thrown as an `Error` with this message in plain words. (A plain Rust value
/// until it crosses into JavaScript, so native tests can inspect it.)
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Fault(pub String);

impl From<Fault> for JsValue {
    fn from(f: Fault) -> JsValue {
        wasm_bindgen::JsError::new(&f.0).into()
    }
}

impl std::fmt::Display for Fault {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.0)
    }
}

/// A [`Fault`] saying `context: e`.
pub(crate) fn fault(context: &str, e: impl std::fmt::Display) -> Fault {
    Fault(format!("{context}: {e}"))
}

/// Reads `what`, a value the page passes as a JavaScript object.
pub(crate) fn from_js<T: DeserializeOwned>(what: &str, value: JsValue) -> Result<T, Fault> {
    serde_wasm_bindgen::from_value(value).map_err(|e| fault(what, e))
}

/// `value` as a JavaScript object for the page (`what` names it in an error).
pub(crate) fn to_js<T: Serialize>(what: &str, value: &T) -> Result<JsValue, Fault> {
    serde_wasm_bindgen::to_value(value).map_err(|e| fault(what, e))
}

/// Looks up a network offered for training jobs.
pub(crate) fn network(id: &str) -> Result<more_nn::networks::Trainable, Fault> {
    more_nn::networks::find_trainable(id).ok_or_else(|| {
        let ids: Vec<&str> = more_nn::networks::trainable().iter().map(|n| n.id).collect();
        Fault(format!("unknown network {id:?}; offered: {}", ids.join(", ")))
    })
}

/// An array of whole rows of `shape` from `values`, or an error naming `what`.
pub(crate) fn rows_array(what: &str, values: &[f32], shape: &[usize]) -> Result<ndarray::ArrayD<f32>, Fault> {
    let per: usize = shape.iter().product();
    if per == 0 || values.is_empty() || values.len() % per != 0 {
        return Err(Fault(format!("{what}: {} values do not make whole rows of shape {shape:?}", values.len())));
    }
    if let Some(bad) = values.iter().find(|v| !v.is_finite()) {
        return Err(Fault(format!("{what}: non-finite value {bad}")));
    }
    let mut full = vec![values.len() / per];
    full.extend_from_slice(shape);
    ndarray::ArrayD::from_shape_vec(ndarray::IxDyn(&full), values.to_vec()).map_err(|e| fault(what, e))
}
