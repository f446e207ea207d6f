//! The secret key, held in wasm memory, and the operations that need it.

use more_core::{KeyOptions, SecretKey};
use ndarray::{ArrayViewD, IxDyn};
use wasm_bindgen::prelude::*;

use crate::{MAX_WIRE_BYTES, js_err};

/// A MORE secret key (the 2x2 matrix `S` and the noise range). Lives in the page only; export it to keep it.
#[wasm_bindgen]
pub struct Key {
    inner: SecretKey,
}

impl Key {
    /// The core key (for other modules of this crate, e.g. the walkthrough's attack steps).
    pub fn inner(&self) -> &SecretKey {
        &self.inner
    }

    /// Wraps a core key.
    pub fn from_inner(inner: SecretKey) -> Key {
        Key { inner }
    }
}

#[wasm_bindgen]
impl Key {
    /// A fresh key from the browser's CSPRNG (`crypto.getRandomValues`). `maxCondition` bounds the
    /// condition number of `S` (default 10; larger loses precision).
    pub fn generate(max_condition: Option<f64>) -> Result<Key, JsError> {
        let mut opts = KeyOptions::default();
        if let Some(k) = max_condition {
            opts.max_condition = k;
        }
        let inner = SecretKey::generate(opts).map_err(|e| js_err("cannot generate a key", e))?;
        Ok(Key { inner })
    }

    /// A reproducible key from a seed. NOT secret: for tests and demos only.
    #[wasm_bindgen(js_name = fromSeed)]
    pub fn from_seed(seed: u64) -> Result<Key, JsError> {
        let inner = SecretKey::from_seed(seed, KeyOptions::default()).map_err(|e| js_err("bad seed", e))?;
        Ok(Key { inner })
    }

    /// The key as 56 bytes (`MOREKEY1`, then `S` and the noise range as little-endian f64).
    #[wasm_bindgen(js_name = toBytes)]
    pub fn to_bytes(&self) -> Vec<u8> {
        self.inner.to_bytes()
    }

    /// Parses [`Key::to_bytes`] output.
    #[wasm_bindgen(js_name = fromBytes)]
    pub fn from_bytes(bytes: &[u8]) -> Result<Key, JsError> {
        let inner = SecretKey::from_bytes(bytes).map_err(|e| js_err("this is not a MORE key file", e))?;
        Ok(Key { inner })
    }

    /// The key as JSON text, for export.
    #[wasm_bindgen(js_name = toJson)]
    pub fn to_json(&self) -> String {
        self.inner.to_json()
    }

    /// Parses [`Key::to_json`] output.
    #[wasm_bindgen(js_name = fromJson)]
    pub fn from_json(text: &str) -> Result<Key, JsError> {
        let inner = SecretKey::from_json(text).map_err(|e| js_err("this is not a MORE key file", e))?;
        Ok(Key { inner })
    }

    /// Condition number of `S` (ratio of its singular values).
    #[wasm_bindgen(js_name = conditionNumber)]
    pub fn condition_number(&self) -> f64 {
        self.inner.condition_number()
    }

    /// `S` row-major: `[s00, s01, s10, s11]`.
    pub fn matrix(&self) -> Vec<f64> {
        self.inner.matrix().iter().flatten().copied().collect()
    }

    /// Encrypts `values` (row-major, `shape` = dimensions, product = `values.length`) and returns one
    /// wire-format f32 tensor of shape `shape` (media type `application/x-more-tensor`).
    pub fn encrypt(&self, values: &[f32], shape: &[u32]) -> Result<Vec<u8>, JsError> {
        let shape: Vec<usize> = shape.iter().map(|&d| d as usize).collect();
        if shape.is_empty() || shape.len() > 8 || shape.contains(&0) {
            return Err(JsError::new(&format!("cannot encrypt: shape {shape:?} must have 1 to 8 non-zero dimensions")));
        }
        let n = shape.iter().try_fold(1usize, |a, &d| a.checked_mul(d));
        if n != Some(values.len()) {
            return Err(JsError::new(&format!(
                "cannot encrypt: shape {shape:?} does not hold {} values",
                values.len()
            )));
        }
        let view = ArrayViewD::from_shape(IxDyn(&shape), values).map_err(|e| js_err("cannot encrypt", e))?;
        let t = self.inner.encrypt_tensor(&view).map_err(|e| js_err("cannot encrypt", e))?;
        Ok(more_core::encode(&t))
    }

    /// Decrypts a wire-format tensor (f32 or f64) to its plaintext values, row-major (shape from
    /// `wireShape`).
    pub fn decrypt(&self, bytes: &[u8]) -> Result<Vec<f32>, JsError> {
        let t = more_core::decode_any(bytes, MAX_WIRE_BYTES)
            .map_err(|e| js_err("the answer is not a valid encrypted tensor", e))?;
        Ok(match t {
            more_core::AnyTensor::F32(t) => self.inner.decrypt_tensor(&t).iter().copied().collect(),
            more_core::AnyTensor::F64(t) => self.inner.decrypt_tensor(&t).iter().map(|&v| v as f32).collect(),
        })
    }
}
