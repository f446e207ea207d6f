//! The regression client of the page: one patient of the whole-body circulation surrogate under BFV
//! (`more_bfv::regression`). The page holds only the model's [`RegressionScaling`] as the server lists it
//! (`GET /api/v1/models`, `scaling`), never its weights. The patient sits in slot 0 of each of the 7 input
//! ciphertexts (the slot-per-sample packing), so the evaluation key is the batch's relinearisation key.

use more_bfv::batch::{BATCH_INPUT_LEVEL, BATCH_OUTPUT_LEVEL};
use more_bfv::wire::{decode_ciphertexts, encode_batch_keys, encode_ciphertexts};
use more_bfv::{BfvError, Client, RegressionScaling};
use serde::Serialize;
use wasm_bindgen::prelude::*;

use crate::js;

/// A decrypted answer for one patient.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct RegressionAnswer {
    /// The physical outputs (mmHg, mL, L/min, % for the WBC surrogate), in the model's output order.
    pub outputs: Vec<f64>,
    /// The standardised outputs `Y_k / output_divisor[k]`.
    pub standardised: Vec<f64>,
    /// The decrypted integer limbs, `output_limbs` per output (below `t/2 < 2^34`, exact as `f64`).
    pub limbs: Vec<i64>,
}

/// The page's BFV client for a regression model: a secret key drawn from `crypto.getRandomValues` and the
/// model's scaling. The secret key never leaves this object (it lives in the page's worker).
#[wasm_bindgen]
pub struct BfvRegressionClient {
    client: Client,
    scaling: RegressionScaling,
}

#[wasm_bindgen]
impl BfvRegressionClient {
    /// A fresh secret key for the model whose listed `scaling` object is given (checked: shapes, limbs,
    /// finite positive scales).
    #[wasm_bindgen(constructor)]
    pub fn new(scaling: JsValue) -> Result<BfvRegressionClient, JsError> {
        let scaling: RegressionScaling = serde_wasm_bindgen::from_value(scaling)
            .map_err(|e| JsError::new(&format!("the model's scaling is not readable: {e}")))?;
        BfvRegressionClient::with_scaling(scaling).map_err(js)
    }

    /// The batch evaluation-key message (the relinearisation key at the input level, about 0.4 MB) to
    /// upload once (`POST /api/v1/bfv/keys`).
    #[wasm_bindgen(js_name = batchKeys)]
    pub fn batch_keys(&self) -> Result<Vec<u8>, JsError> {
        self.batch_key_message().map_err(js)
    }

    /// Encrypts one patient's raw parameters (in the model's input order): the message of
    /// `input_ciphertexts` ciphertexts at the batch input level for
    /// `POST /api/v1/bfv/models/{id}/infer`. A value outside the model's box is refused, never clamped.
    pub fn encrypt(&self, raw: &[f64]) -> Result<Vec<u8>, JsError> {
        self.encrypt_patient(raw).map_err(js)
    }

    /// Decrypts the server's answer (the limb ciphertexts at the batch output level) into
    /// `{ outputs, standardised, limbs }` ([`RegressionAnswer`]).
    pub fn decrypt(&self, message: &[u8]) -> Result<JsValue, JsError> {
        let answer = self.decrypt_answer(message).map_err(js)?;
        serde_wasm_bindgen::to_value(&answer).map_err(|e| JsError::new(&e.to_string()))
    }

    /// The serialised secret key — only for the page's test that none of its bytes is ever sent.
    #[wasm_bindgen(js_name = secretKeyBytesForTest)]
    pub fn secret_key_bytes_for_test(&self) -> Vec<u8> {
        self.client.secret_key_bytes()
    }
}

impl BfvRegressionClient {
    /// A fresh secret key for a model with this scaling.
    pub fn with_scaling(scaling: RegressionScaling) -> Result<BfvRegressionClient, BfvError> {
        scaling.validate()?;
        Ok(BfvRegressionClient { client: Client::new(&mut rand::rng()), scaling })
    }

    /// The scaling this client encrypts and decodes with.
    pub fn scaling(&self) -> &RegressionScaling {
        &self.scaling
    }

    /// [`BfvRegressionClient::batch_keys`] without the JavaScript error.
    pub fn batch_key_message(&self) -> Result<Vec<u8>, BfvError> {
        Ok(encode_batch_keys(&self.client.batch_keys(&mut rand::rng())?))
    }

    /// [`BfvRegressionClient::encrypt`] without the JavaScript error.
    pub fn encrypt_patient(&self, raw: &[f64]) -> Result<Vec<u8>, BfvError> {
        let x = self.scaling.quantize_input(raw)?;
        let cts = self.client.encrypt_samples(std::slice::from_ref(&x), self.scaling.inputs(), &mut rand::rng())?;
        Ok(encode_ciphertexts(&cts, BATCH_INPUT_LEVEL))
    }

    /// [`BfvRegressionClient::decrypt`] without the JavaScript error.
    pub fn decrypt_answer(&self, message: &[u8]) -> Result<RegressionAnswer, BfvError> {
        let count = self.scaling.result_ciphertexts();
        let cts = decode_ciphertexts(message, count, BATCH_OUTPUT_LEVEL)?;
        let limbs = self.client.decrypt_samples(&cts, count, 1)?.remove(0);
        Ok(RegressionAnswer {
            outputs: self.scaling.decode(&limbs),
            standardised: self.scaling.standardised_outputs(&limbs),
            limbs,
        })
    }
}
