//! What the training server can read from the model it trained, without the key: every parameter
//! ciphertext of the encrypted model shares one eigenbasis, which the ciphertexts give away (the
//! walkthrough's "shared eigenvectors" step, `more_core::attack::Eigenbasis`, uses the 2x2 structure).
//! Projecting on its two eigenvectors yields two candidate weight vectors: one is the trained model's
//! weights exactly, the other the noise lane's shadow model. The server tells them apart by trying both
//! on any public data.

use more_core::EncryptedTensor;
use more_core::attack::Eigenbasis;
use more_enctrain::model_file::EncryptedModel;
use wasm_bindgen::prelude::*;

use crate::owner::MAX_MODEL_BYTES;
use crate::{Fault, fault};

/// The two weight vectors an eavesdropper reads from an encrypted model file.
#[wasm_bindgen]
#[derive(Debug, Clone)]
pub struct ModelReadout {
    lanes: [Vec<f32>; 2],
    spread: f64,
}

#[wasm_bindgen]
impl ModelReadout {
    /// Reads the encrypted model (`GET /api/v1/jobs/{id}/model`) with ciphertexts alone.
    pub fn read(bytes: &[u8]) -> Result<ModelReadout, Fault> {
        let model =
            EncryptedModel::from_bytes(bytes, MAX_MODEL_BYTES).map_err(|e| fault("not an encrypted model", e))?;
        let params: Vec<EncryptedTensor<f32>> = model
            .params
            .iter()
            .map(|p| p.to_encrypted())
            .collect::<Result<_, _>>()
            .map_err(|e| fault("encrypted model", e))?;
        let refs: Vec<&EncryptedTensor<f32>> = params.iter().collect();
        let basis = Eigenbasis::estimate(&refs).map_err(|e| fault("no shared eigenbasis", e))?;
        let mut lanes = [Vec::new(), Vec::new()];
        for p in &params {
            let [a, b] = basis.lanes(p);
            lanes[0].extend(a.iter().map(|&v| v as f32));
            lanes[1].extend(b.iter().map(|&v| v as f32));
        }
        Ok(ModelReadout { lanes, spread: basis.spread() })
    }

    /// Candidate weights `0` or `1` (every parameter in the model's order, flattened); empty otherwise.
    pub fn candidate(&self, which: usize) -> Vec<f32> {
        self.lanes.get(which).cloned().unwrap_or_default()
    }

    /// How far the parameters are from sharing one eigenbasis (rounding-sized under one key).
    pub fn spread(&self) -> f64 {
        self.spread
    }
}
