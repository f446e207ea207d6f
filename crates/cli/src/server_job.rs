//! What a task hands `more train <task> --encrypted --server URL` (`crate::server_training`): the job a
//! server trains, the data, and what the task does with the two trained models. The tasks build these
//! ([`Task::server_job`](crate::tasks::Task::server_job)); the driver runs them.

use anyhow::Result;
use ndarray::ArrayD;

use more_enctrain::task::mean_epoch_seconds;
use more_enctrain::train::EncryptionSetup;
use more_enctrain::upload::JobRequest;
use more_nn::train::{History, Loss};
use more_nn::{LayerSpec, Model, ModelMeta};

use crate::remote::RemoteRun;

/// What a task has a server train, and the same network for the local plaintext run.
pub struct ServerJob {
    /// The id the decrypted model is saved under.
    pub id: String,
    /// The job: the server's network id and the hyper-parameters.
    pub request: JobRequest,
    /// Input shape of one row.
    pub input_shape: Vec<usize>,
    /// The network's layers (the same as the server's network `request.network`).
    pub specs: Vec<LayerSpec>,
    /// The loss both runs minimise.
    pub loss: Loss,
    /// Whether the targets are classes (accuracy is tracked).
    pub classification: bool,
    /// Metadata of the plaintext-trained model (it is scored, not saved).
    pub plain_meta: ModelMeta,
    /// Loads or simulates the data; called once the server has accepted the job, so that a job it would
    /// refuse fails before any data are read.
    pub data: Box<dyn FnOnce() -> Result<ServerData>>,
}

/// The training rows of a [`ServerJob`] and what the task does with the two trained models.
pub struct ServerData {
    /// Training inputs, one row per sample.
    pub inputs: ArrayD<f32>,
    /// Training targets.
    pub targets: ArrayD<f32>,
    /// The noise lanes the inputs and targets are encrypted with.
    pub setup: EncryptionSetup,
    /// What a row is called in messages (`digits`).
    pub noun: &'static str,
    /// How to send at most this many rows, for an upload over the server's limit (`pass --limit 800`).
    pub fewer: Box<dyn Fn(usize) -> String>,
    /// Scores both models on the task's held-out data and completes the decrypted model's metadata
    /// (`server` is the server's URL).
    #[allow(clippy::type_complexity)]
    pub finish: Box<dyn FnOnce(&mut BothSides, &str) -> Result<Outcome>>,
}

/// The two models of one job: trained by the server on ciphertexts, and here on the plaintext.
pub struct BothSides {
    /// The server's run, its model decrypted.
    pub remote: RemoteRun,
    /// The model trained here on the plaintext.
    pub plain: Model,
    /// Its training history.
    pub plain_history: History,
}

impl BothSides {
    /// Mean training time per epoch here on the plaintext, seconds.
    pub fn plain_epoch_seconds(&self) -> f64 {
        mean_epoch_seconds(&self.plain_history)
    }

    /// Mean training time per epoch on the server on the ciphertexts, seconds.
    pub fn server_epoch_seconds(&self) -> f64 {
        let s = &self.remote.epoch_seconds;
        s.iter().sum::<f64>() / s.len().max(1) as f64
    }
}

/// How a task reports a job: its own fields of the JSON object (`--json`) and its text otherwise.
pub struct Outcome {
    /// The task's fields (the held-out scores); the job's own (times, bytes, model file) are added.
    pub json: serde_json::Value,
    /// The text printed without `--json`.
    pub text: String,
}
