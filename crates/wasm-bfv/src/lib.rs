//! BFV in the browser: key generation, encryption and decryption with `more-bfv`, so that the secret key
//! never leaves the page. Only public material leaves it: the evaluation keys (uploaded once) and the
//! ciphertext messages. A separate module from `more-wasm`, loaded only when BFV is used (it is several times
//! larger: it carries fhe.rs's NTT and RNS arithmetic).
//!
//! Two clients: [`BfvClient`] classifies a digit or an angiogram frame averaged to 28x28 (single-image
//! packing, rotation keys; decrypted with the model's class count), and
//! [`BfvRegressionClient`] predicts one patient's outputs with the whole-body circulation surrogate
//! (one patient per slot, the batch relinearisation key only).

mod regression;

pub use regression::{BfvRegressionClient, RegressionAnswer};

use more_bfv::network::quantize_pixel;
use more_bfv::params::{INPUT_LEVEL, OUTPUT_LEVEL, scheme_info};
use more_bfv::wire::{decode_ciphertexts, encode_ciphertexts, encode_keys};
use more_bfv::{BfvError, Client};
use wasm_bindgen::prelude::*;

/// The class count of the digit classifier, which callers that give none decrypt for.
const DIGIT_CLASSES: usize = 10;

/// A library error as the JavaScript exception the page shows.
pub(crate) fn js(e: BfvError) -> JsError {
    JsError::new(&e.to_string())
}

/// The client: a secret key drawn from `crypto.getRandomValues`.
#[wasm_bindgen]
pub struct BfvClient {
    client: Client,
}

#[wasm_bindgen]
impl BfvClient {
    /// A fresh secret key.
    #[wasm_bindgen(constructor)]
    pub fn new() -> BfvClient {
        BfvClient { client: Client::new(&mut rand::rng()) }
    }

    /// The evaluation-key message to upload once (`POST /api/v1/bfv/keys`).
    #[wasm_bindgen(js_name = evalKeys)]
    pub fn eval_keys(&self) -> Result<Vec<u8>, JsError> {
        Ok(encode_keys(&self.client.eval_keys(&mut rand::rng()).map_err(js)?))
    }

    /// Encrypts one image (784 values in `[0, 1]`, as the `mnist-digit` preprocessing gives them), quantized
    /// to `round(v · input_levels)`: the ciphertext message for `POST /api/v1/bfv/models/{id}/infer`.
    pub fn encrypt(&self, pixels: &[f32], input_levels: u32) -> Result<Vec<u8>, JsError> {
        if pixels.len() != 784 || !(1..=255).contains(&input_levels) {
            return Err(JsError::new("expected 784 values and input_levels in 1..=255"));
        }
        let x: Vec<i64> = pixels.iter().map(|&v| quantize_pixel(v, i64::from(input_levels))).collect();
        let cts = self.client.encrypt(&x, &mut rand::rng()).map_err(js)?;
        Ok(encode_ciphertexts(&cts, INPUT_LEVEL))
    }

    /// Decrypts the server's answer into the model's integer logits (as `f64`, exact: they are below
    /// `2^34`). `classes` is the model's class count (the length of its `labels` in the listing: 2 for the
    /// angiogram views); left out, 10 (the digits).
    pub fn decrypt(&self, message: &[u8], classes: Option<u32>) -> Result<Vec<f64>, JsError> {
        let classes = classes.map_or(DIGIT_CLASSES, |c| c as usize);
        let count = more_bfv::layout::output_ciphertexts(classes);
        let cts = decode_ciphertexts(message, count, OUTPUT_LEVEL).map_err(js)?;
        Ok(self.client.decrypt(&cts, classes).map_err(js)?.into_iter().map(|v| v as f64).collect())
    }

    /// The serialised secret key — only for the page's test that none of its bytes is ever sent.
    #[wasm_bindgen(js_name = secretKeyBytesForTest)]
    pub fn secret_key_bytes_for_test(&self) -> Vec<u8> {
        self.client.secret_key_bytes()
    }
}

impl Default for BfvClient {
    fn default() -> Self {
        Self::new()
    }
}

/// The parameters as an object (`more_bfv::params::SchemeInfo`: the ring degree `N`, the moduli, `t`, the
/// security level and its source).
#[wasm_bindgen(js_name = bfvParameters)]
pub fn bfv_parameters() -> Result<JsValue, serde_wasm_bindgen::Error> {
    serde_wasm_bindgen::to_value(&scheme_info())
}
