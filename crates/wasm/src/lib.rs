//! # more-wasm
//!
//! The browser's side of the demo, compiled to WebAssembly with `wasm-bindgen`: key generation (the
//! browser's CSPRNG through `getrandom`), key export/import, encryption of a tensor to the wire format
//! (`docs/wire-format.md`), decryption of the server's answer, the ciphertext planes for display, and the
//! image preprocessing the models expect; with the feature `onnx`, the import of the user's own ONNX network
//! as a model file (`onnx`, built by `scripts/build-web.sh` as the separate module `web/pkg-onnx`). It has no cryptography of its own: everything is `more-core`
//! and `more-imaging`. JavaScript sees the names in `camelCase`; errors are thrown as `Error` with a
//! message in plain words. Bulk numbers cross as typed arrays; readings with named parts as plain objects
//! (through `serde-wasm-bindgen`).
//!
//! MORE hides nothing from a curious server (see `web/walkthrough.html` and `docs/attacks.md`): this
//! crate is a faithful demo of the scheme, not a privacy guarantee.
#![deny(missing_docs)]

pub mod attack;
pub mod image;
pub mod keys;
#[cfg(feature = "onnx")]
pub mod onnx;
pub mod wbc;
pub mod wire;

pub use image::{angio_bfv_input, normalize, preprocess_image, preprocess_image_raw};
pub use keys::Key;
pub use wire::{wire_planes, wire_shape};

/// Upper bound on a wire tensor this module decodes (64 MiB).
pub const MAX_WIRE_BYTES: usize = 64 << 20;

/// The crate version, for the page footer.
#[wasm_bindgen::prelude::wasm_bindgen(js_name = version)]
pub fn version() -> String {
    env!("CARGO_PKG_VERSION").to_string()
}

/// `value` as a plain JavaScript object (structs become objects with the same field names).
pub(crate) fn to_js<T: serde::Serialize>(value: &T) -> Result<wasm_bindgen::JsValue, wasm_bindgen::JsError> {
    serde_wasm_bindgen::to_value(value).map_err(|e| js_err("cannot hand the result to JavaScript", e))
}

/// Turns any displayable error into a JavaScript `Error`.
pub(crate) fn js_err(context: &str, e: impl std::fmt::Display) -> wasm_bindgen::JsError {
    wasm_bindgen::JsError::new(&format!("{context}: {e}"))
}
