//! Training one job on its ciphertexts with more-enctrain's [`Trainer`] (more-nn's `fit` loop) inside a
//! training thread's own rayon pool of a fixed number of threads, so the inference workers keep their share
//! of the machine. The training threads' loops, which take jobs from the queue, belong to the stores
//! ([`local::run`](super::local::run), [`shared::run`](super::shared::run)); they see a job through the
//! [`Training`] trait.
//!
//! The server holds no key, so nothing is revealed: `JobReveal` is the loop's reporting window. It
//! receives each batch's encrypted outputs and targets, computes the batch loss on the ciphertexts
//! (`Loss::value_tensor`: ring-only for the mean squared error; `exp`, the reciprocal and `ln` of
//! cross-entropy use the 2x2 structure), sums the epoch's loss the same way (ring-only: public scalars and
//! additions), streams both as ciphertexts, and hands the loop zeros. The loop therefore runs a fixed
//! number of epochs: no early stopping, no model selection, no checkpoints.

use std::sync::Mutex;
use std::time::{Duration, Instant};

use ndarray::ArrayD;
use serde_json::{Value, json};

use more_enctrain::CoeffTensor;
use more_enctrain::algebra::Encrypted;
use more_enctrain::train::Trainer;
use more_enctrain::upload::{JobRequest, decode_body, loss_to_text};
use more_nn::train::Loss;
use more_nn::{Algebra, ModelMeta, Reveal};

use super::networks;

/// Why a job did not produce a model: (code, message).
pub type Failure = (&'static str, String);

/// A job as the training loop sees it, wherever it is kept (this process's jobs directory, or the shared
/// state).
pub trait Training: Send + Sync {
    /// Its id.
    fn id(&self) -> String;
    /// The header it was posted with.
    fn request(&self) -> JobRequest;
    /// Appends an event to its stream.
    fn event(&self, kind: &'static str, data: Value);
    /// Appends an `epoch` event: `epoch` epochs are done.
    fn epoch_event(&self, epoch: usize, data: Value);
    /// Whether training must stop (the job was deleted, or is no longer this replica's).
    fn should_stop(&self) -> bool;
    /// Its upload.
    fn data(&self) -> Result<Vec<u8>, Failure>;
}

/// The training pool of one training thread (`None`, logged, if it cannot be started).
pub fn pool(threads: usize) -> Option<rayon::ThreadPool> {
    rayon::ThreadPoolBuilder::new()
        .num_threads(threads.max(1))
        .thread_name(|i| format!("more-train-{i}"))
        .build()
        .map_err(|e| tracing::error!(error = %e, "cannot start the training pool: this server does not train"))
        .ok()
}

/// Trains a job (a panic becomes an `internal` failure); the encrypted model's bytes.
pub fn train_caught(job: &dyn Training, pool: &rayon::ThreadPool, max_wall: Duration) -> Result<Vec<u8>, Failure> {
    std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| train(job, pool, max_wall)))
        .unwrap_or_else(|_| Err(("internal", "training panicked".into())))
}

fn train(job: &dyn Training, pool: &rayon::ThreadPool, max_wall: Duration) -> Result<Vec<u8>, Failure> {
    let request = job.request();
    let network = networks::find(&request.network).ok_or(("invalid_job", "unknown network".to_string()))?;
    let bytes = job.data()?;
    let upload = decode_body(&bytes, &network.input_shape, network.outputs)
        .map_err(|e| ("invalid_job", format!("the job's data is not valid: {e}")))?;
    drop(bytes);
    let cfg = request.train_config(network.loss, network.classification);
    let basis = upload.data.basis();
    let mut trainer = Trainer::new(basis, &network.input_shape, &network.layers, request.seed, &upload.canaries)
        .map_err(|e| ("invalid_job", e.to_string()))?;
    let rows = upload.data.len();
    let reveal = JobReveal {
        alg: Encrypted::new(basis),
        loss: network.loss,
        rows,
        steps: rows.div_ceil(cfg.batch_size),
        epochs: cfg.epochs,
        job,
        deadline: Instant::now() + max_wall,
        progress: Mutex::new(Progress { started: Some(Instant::now()), ..Progress::default() }),
    };
    job.event(
        "started",
        json!({"epochs": cfg.epochs, "steps_per_epoch": reveal.steps, "rows": rows, "network": network.id}),
    );
    let fitted = pool.install(|| trainer.fit(&reveal, &upload.data, None, &cfg));
    if job.should_stop() {
        return Err(("cancelled", "cancelled".into()));
    }
    if Instant::now() >= reveal.deadline {
        return Err(("wall_time", format!("training took longer than the server's limit of {} s", max_wall.as_secs())));
    }
    fitted.map_err(|e| ("training_failed", e.to_string()))?;
    let mut meta = ModelMeta::new(network.id, if network.classification { "classification" } else { "regression" });
    meta.description = format!("{} trained on encrypted data by more-server", network.id);
    meta.training.insert("epochs".into(), cfg.epochs.to_string());
    meta.training.insert("rows".into(), rows.to_string());
    trainer.encrypted_model(meta).and_then(|m| m.to_bytes()).map_err(|e| ("internal", e.to_string()))
}

#[derive(Default)]
struct Progress {
    /// Encrypted outputs of the current batch, until its targets arrive.
    outputs: Option<CoeffTensor<f32>>,
    /// Batches done in the current epoch.
    step: usize,
    /// The current epoch (0-based).
    epoch: usize,
    /// Σ (rows of batch / rows) · batch loss over the epoch so far, encrypted.
    epoch_loss: Option<CoeffTensor<f32>>,
    /// When the epoch started (the previous epoch's end, or the start of training).
    started: Option<Instant>,
}

/// The loop's reporting window on a server without the key: computes and streams encrypted losses, reveals
/// nothing, and stops the loop when the job is cancelled or out of time.
struct JobReveal<'a> {
    alg: Encrypted,
    loss: Loss,
    rows: usize,
    steps: usize,
    epochs: usize,
    job: &'a dyn Training,
    deadline: Instant,
    progress: Mutex<Progress>,
}

impl JobReveal<'_> {
    fn batch_done(
        &self,
        p: &mut Progress,
        outputs: &CoeffTensor<f32>,
        targets: &CoeffTensor<f32>,
    ) -> more_nn::Result<()> {
        let loss = self.loss.value_tensor(&self.alg, outputs, targets)?;
        let weight = outputs.shape()[0] as f32 / self.rows as f32;
        let part = self.alg.scale(&loss, weight)?;
        p.epoch_loss = Some(match p.epoch_loss.take() {
            Some(sum) => self.alg.add(&sum, &part)?,
            None => part,
        });
        p.step += 1;
        let text = |t: &CoeffTensor<f32>| loss_to_text(t).map_err(more_enctrain::algebra::to_nn);
        self.job
            .event("step", json!({"epoch": p.epoch + 1, "step": p.step, "steps": self.steps, "loss": text(&loss)?}));
        if p.step == self.steps {
            let sum = p.epoch_loss.take().expect("at least one batch");
            let seconds = p.started.replace(Instant::now()).map_or(0.0, |s| s.elapsed().as_secs_f64());
            self.job.epoch_event(
                p.epoch + 1,
                json!({"epoch": p.epoch + 1, "epochs": self.epochs, "loss": text(&sum)?, "seconds": seconds}),
            );
            p.step = 0;
            p.epoch += 1;
        }
        Ok(())
    }
}

impl Reveal<Encrypted> for JobReveal<'_> {
    fn reveal(&self, t: &CoeffTensor<f32>) -> more_nn::Result<ArrayD<f32>> {
        if self.job.should_stop() {
            return Err(more_nn::Error::Training("the job was cancelled".into()));
        }
        if Instant::now() >= self.deadline {
            return Err(more_nn::Error::Training("the job ran out of time".into()));
        }
        let mut p = self.progress.lock().unwrap_or_else(|e| e.into_inner());
        match p.outputs.take() {
            None => p.outputs = Some(t.clone()),
            Some(outputs) => self.batch_done(&mut p, &outputs, t)?,
        }
        Ok(ArrayD::zeros(t.shape()))
    }
}
