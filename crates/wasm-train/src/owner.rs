//! The page as the key owner of a training job: a fresh MORE key from the browser's CSPRNG, the job body
//! (the header line and the encrypted inputs, targets and canaries, `more_enctrain::upload`), and the
//! decryption of what the server sends back — each epoch's encrypted loss and the encrypted model (after
//! the known-answer canary check). The key never leaves wasm memory.

use more_core::{KeyOptions, SecretKey};
use more_enctrain::model_file::EncryptedModel;
use more_enctrain::owner::KeyOwner;
use more_enctrain::train::{EncryptionSetup, decrypt_model};
use more_enctrain::upload::{JobRequest, encode_body, loss_from_text};
use wasm_bindgen::prelude::*;

use crate::model::TrainedModel;
use crate::{Fault, fault, from_js, network, rows_array};

/// Largest encrypted model parsed (the MNIST CNNs' are about 1 MB).
pub const MAX_MODEL_BYTES: usize = 64 << 20;

/// The key owner of one training job.
#[wasm_bindgen]
pub struct TrainingOwner {
    owner: KeyOwner,
}

impl std::fmt::Debug for TrainingOwner {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("TrainingOwner").finish_non_exhaustive()
    }
}

impl TrainingOwner {
    /// An owner of `key` (tests).
    pub fn with_key(key: SecretKey) -> Self {
        TrainingOwner { owner: KeyOwner::new(key) }
    }

    /// [`TrainingOwner::job_body`] for a request already read.
    pub fn encrypt_job(&mut self, request: &JobRequest, inputs: &[f32], targets: &[f32]) -> Result<Vec<u8>, Fault> {
        let net = network(&request.network)?;
        let x = rows_array("inputs", inputs, &net.input_shape)?;
        let y = rows_array("targets", targets, &[net.outputs])?;
        if x.shape()[0] != y.shape()[0] {
            return Err(Fault(format!("{} input rows but {} target rows", x.shape()[0], y.shape()[0])));
        }
        let setup = EncryptionSetup::for_network(&net);
        let bad = |e| fault("cannot encrypt", e);
        let cx = self.owner.encrypt_inputs(&x.view(), setup.input_noise.0, setup.input_noise.1).map_err(bad)?;
        let cy = self.owner.encrypt_targets(&y, setup.targets).map_err(bad)?;
        let canaries = self.owner.encrypt_canaries::<f32>().map_err(bad)?;
        encode_body(request, &cx, &cy, &canaries).map_err(bad)
    }
}

#[wasm_bindgen]
impl TrainingOwner {
    /// A fresh key (condition number at most 10) from the browser's CSPRNG; the random lanes come from a
    /// CSPRNG too.
    #[wasm_bindgen(constructor)]
    pub fn new() -> Result<TrainingOwner, Fault> {
        let key = SecretKey::generate(KeyOptions::default()).map_err(|e| fault("cannot generate a key", e))?;
        Ok(TrainingOwner::with_key(key))
    }

    /// The key's condition number.
    #[wasm_bindgen(js_name = conditionNumber)]
    pub fn condition_number(&self) -> f64 {
        self.owner.key().condition_number()
    }

    /// The body of `POST /api/v1/jobs` (media type `application/x-more-training-job`): the request
    /// (an object `{network, epochs, batch_size, lr, lr_decay?, optimizer?, seed?}`) and the inputs and
    /// targets (row-major, the network's shapes) encrypted under this key with the network's noise lanes,
    /// plus the canaries. Throws on a malformed request (an unknown or missing field).
    #[wasm_bindgen(js_name = jobBody)]
    pub fn job_body(&mut self, request: JsValue, inputs: &[f32], targets: &[f32]) -> Result<Vec<u8>, Fault> {
        self.encrypt_job(&from_js("training request", request)?, inputs, targets)
    }

    /// Decrypts an encrypted loss from the job's events (base64 of a wire-format ciphertext).
    #[wasm_bindgen(js_name = decryptLoss)]
    pub fn decrypt_loss(&self, text: &str) -> Result<f64, Fault> {
        loss_from_text(self.owner.key(), text).map_err(|e| fault("cannot decrypt the loss", e))
    }

    /// Decrypts the encrypted model the server trained (`GET /api/v1/jobs/{id}/model`), after checking its
    /// canaries: a model trained on data under another key is refused.
    #[wasm_bindgen(js_name = decryptModel)]
    pub fn decrypt_model(&self, bytes: &[u8]) -> Result<TrainedModel, Fault> {
        let encrypted =
            EncryptedModel::from_bytes(bytes, MAX_MODEL_BYTES).map_err(|e| fault("not an encrypted model", e))?;
        decrypt_model(&self.owner, &encrypted).map(TrainedModel::new).map_err(|e| fault("cannot decrypt the model", e))
    }
}
