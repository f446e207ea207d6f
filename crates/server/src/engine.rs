//! The inference engine: the loaded models, a bounded job queue and a fixed pool of worker threads that
//! batch concurrent requests for the same model into one encrypted forward pass.
//!
//! CPU-bound work never runs on the async runtime: handlers enqueue a `Job` with `try_send` (a full
//! queue is answered 429 at once) and await a oneshot reply. A worker takes one job, then every job already
//! waiting (up to [`EngineConfig::max_batch_samples`] samples), groups them by model, concatenates each
//! group along the batch axis, runs [`Model::forward_encrypted_in`] once in the configured
//! [`EncryptedForm`] (by default the coefficient form, whose conversion uses the 2x2 structure; each sample
//! is converted with its own reference, so clients with different keys share one pass) and splits the
//! answer. If a batched
//! pass fails (one hostile ciphertext can make a spectral function fail), each job of the group is rerun
//! alone so one client cannot fail another's request. Jobs whose client has gone (timeout, disconnect) are
//! skipped.

use std::collections::BTreeMap;
use std::panic::{AssertUnwindSafe, catch_unwind};
use std::path::Path;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::mpsc::{Receiver, SyncSender, TrySendError, sync_channel};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use more_core::EncryptedTensor;
use more_nn::{EncryptedForm, Model};
use ndarray::{Axis, Slice};
use tokio::sync::oneshot;

/// Loaded models by id.
#[derive(Debug, Clone, Default)]
pub struct Registry {
    models: BTreeMap<String, Arc<Model>>,
}

/// Why the model directory could not be loaded.
#[derive(Debug, thiserror::Error)]
pub enum LoadError {
    /// The directory cannot be read.
    #[error("cannot read model directory {path}: {source}")]
    Dir {
        /// The directory.
        path: String,
        /// The I/O error.
        source: std::io::Error,
    },
    /// A model file is invalid.
    #[error("{path}: {source}")]
    Model {
        /// The file.
        path: String,
        /// The more-nn error.
        source: more_nn::Error,
    },
    /// Two files declare the same id.
    #[error("two model files declare the id {0:?}")]
    DuplicateId(String),
    /// No `*.morenn` file.
    #[error("no *.{ext} model files in {0}", ext = more_nn::model::FILE_EXTENSION)]
    Empty(String),
}

impl Registry {
    /// An empty registry.
    pub fn new() -> Self {
        Self::default()
    }

    /// Adds a model under its `meta().id`.
    pub fn insert(&mut self, model: Model) -> Result<(), LoadError> {
        let id = model.meta().id.clone();
        if self.models.contains_key(&id) {
            return Err(LoadError::DuplicateId(id));
        }
        self.models.insert(id, Arc::new(model));
        Ok(())
    }

    /// Loads every `*.morenn` file of `dir` (sorted by file name); fails on any invalid file, a duplicate id
    /// or an empty directory.
    pub fn load_dir(dir: impl AsRef<Path>) -> Result<Self, LoadError> {
        let dir = dir.as_ref();
        let io = |source| LoadError::Dir { path: dir.display().to_string(), source };
        let mut files = Vec::new();
        for entry in std::fs::read_dir(dir).map_err(io)? {
            let path = entry.map_err(io)?.path();
            if path.extension().is_some_and(|e| e == more_nn::model::FILE_EXTENSION) && path.is_file() {
                files.push(path);
            }
        }
        files.sort();
        if files.is_empty() {
            return Err(LoadError::Empty(dir.display().to_string()));
        }
        let mut reg = Registry::new();
        for path in files {
            let model =
                Model::load(&path).map_err(|source| LoadError::Model { path: path.display().to_string(), source })?;
            reg.insert(model)?;
        }
        Ok(reg)
    }

    /// The model with this id.
    pub fn get(&self, id: &str) -> Option<&Arc<Model>> {
        self.models.get(id)
    }

    /// All models, sorted by id.
    pub fn iter(&self) -> impl Iterator<Item = &Arc<Model>> {
        self.models.values()
    }

    /// Number of models.
    pub fn len(&self) -> usize {
        self.models.len()
    }

    /// Whether there are no models.
    pub fn is_empty(&self) -> bool {
        self.models.is_empty()
    }
}

/// Sizes of the worker pool and queue.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct EngineConfig {
    /// Worker threads (each runs one forward pass at a time).
    pub workers: usize,
    /// Jobs that may wait for a worker; one more is answered 429.
    pub queue: usize,
    /// Largest number of samples a worker merges into one forward pass.
    pub max_batch_samples: usize,
    /// How the forward pass runs on ciphertexts: two coefficient planes (default; the conversion uses the
    /// 2x2 structure) or the four planes.
    pub form: EncryptedForm,
}

impl Default for EngineConfig {
    fn default() -> Self {
        let workers = std::thread::available_parallelism().map_or(2, |n| n.get());
        EngineConfig { workers, queue: 64, max_batch_samples: 8, form: EncryptedForm::default() }
    }
}

/// The answer to one job.
#[derive(Debug)]
pub struct Computed {
    /// Encrypted output, `[4, N, output_len]`.
    pub output: EncryptedTensor<f32>,
    /// Time spent waiting in the queue.
    pub queue: Duration,
    /// Time of the forward pass this job was part of.
    pub compute: Duration,
    /// Samples in that forward pass.
    pub batch_samples: usize,
}

/// Why a job failed.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum JobError {
    /// The queue is full.
    #[error("the inference queue is full")]
    QueueFull,
    /// The workers are gone (shutting down).
    #[error("the server is shutting down")]
    ShuttingDown,
    /// The model rejected the ciphertext (wrong shape, not a valid ciphertext, non-finite result).
    #[error("{0}")]
    Rejected(String),
    /// The model panicked (a bug).
    #[error("internal error in the model")]
    Panicked,
}

/// One queued inference.
struct Job {
    model: Arc<Model>,
    input: EncryptedTensor<f32>,
    enqueued: Instant,
    reply: oneshot::Sender<Result<Computed, JobError>>,
    /// Held until the job is dropped (answered or skipped): the request's memory reservation.
    _hold: Option<Box<dyn Send>>,
}

/// Called after each forward pass with the model's id, the samples in the pass and its duration.
pub type PassObserver = Arc<dyn Fn(&str, usize, Duration) + Send + Sync>;

/// What every worker shares besides the queue.
struct Shared {
    queued: Arc<AtomicUsize>,
    observer: Option<PassObserver>,
}

/// The queue and its workers. Dropping the engine closes the queue; workers finish their jobs and exit.
#[derive(Debug)]
pub struct Engine {
    tx: SyncSender<Job>,
    config: EngineConfig,
    queued: Arc<AtomicUsize>,
}

impl std::fmt::Debug for Job {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Job").field("model", &self.model.meta().id).field("shape", &self.input.shape()).finish()
    }
}

impl Engine {
    /// Starts `config.workers` threads.
    pub fn start(config: EngineConfig) -> Self {
        Self::start_observed(config, None)
    }

    /// Starts `config.workers` threads, calling `observer` after each forward pass.
    pub fn start_observed(config: EngineConfig, observer: Option<PassObserver>) -> Self {
        let config = EngineConfig {
            workers: config.workers.max(1),
            queue: config.queue.max(1),
            max_batch_samples: config.max_batch_samples.max(1),
            form: config.form,
        };
        let (tx, rx) = sync_channel::<Job>(config.queue);
        let rx = Arc::new(Mutex::new(rx));
        let queued = Arc::new(AtomicUsize::new(0));
        let shared = Arc::new(Shared { queued: Arc::clone(&queued), observer });
        for i in 0..config.workers {
            let rx = Arc::clone(&rx);
            let shared = Arc::clone(&shared);
            std::thread::Builder::new()
                .name(format!("more-infer-{i}"))
                .spawn(move || worker(&rx, config.max_batch_samples, config.form, &shared))
                .expect("spawn inference worker");
        }
        Engine { tx, config, queued }
    }

    /// The configuration in use.
    pub fn config(&self) -> EngineConfig {
        self.config
    }

    /// Jobs waiting for a worker.
    pub fn queued(&self) -> usize {
        self.queued.load(Ordering::Relaxed)
    }

    /// Queues `input` (`[4, N, ...input_shape]`) for `model` and waits for the answer.
    pub async fn infer(&self, model: Arc<Model>, input: EncryptedTensor<f32>) -> Result<Computed, JobError> {
        self.infer_holding(model, input, None).await
    }

    /// [`Engine::infer`], keeping `hold` (e.g. a memory reservation) alive with the job: until the job is
    /// answered or, if its client has gone, skipped — not merely until the caller stops waiting.
    pub async fn infer_holding(
        &self,
        model: Arc<Model>,
        input: EncryptedTensor<f32>,
        hold: Option<Box<dyn Send>>,
    ) -> Result<Computed, JobError> {
        let (reply, rx) = oneshot::channel();
        let job = Job { model, input, enqueued: Instant::now(), reply, _hold: hold };
        // Counted before sending so a worker's decrement never precedes it.
        self.queued.fetch_add(1, Ordering::Relaxed);
        if let Err(e) = self.tx.try_send(job) {
            self.queued.fetch_sub(1, Ordering::Relaxed);
            return Err(match e {
                TrySendError::Full(_) => JobError::QueueFull,
                TrySendError::Disconnected(_) => JobError::ShuttingDown,
            });
        }
        rx.await.unwrap_or(Err(JobError::ShuttingDown))
    }
}

fn worker(rx: &Mutex<Receiver<Job>>, max_samples: usize, form: EncryptedForm, shared: &Shared) {
    loop {
        let jobs = {
            // A poisoned lock only means another worker panicked while holding it: the queue is intact.
            let rx = rx.lock().unwrap_or_else(std::sync::PoisonError::into_inner);
            let Ok(first) = rx.recv() else { return };
            let mut samples = first.input.shape()[0];
            let mut jobs = vec![first];
            while samples < max_samples {
                match rx.try_recv() {
                    Ok(job) => {
                        samples += job.input.shape()[0];
                        jobs.push(job);
                    }
                    Err(_) => break,
                }
            }
            shared.queued.fetch_sub(jobs.len(), Ordering::Relaxed);
            jobs
        };
        // Group by model, keeping arrival order; skip jobs whose client has gone.
        let mut groups: Vec<Vec<Job>> = Vec::new();
        for job in jobs {
            if job.reply.is_closed() {
                continue;
            }
            match groups.iter_mut().find(|g| Arc::ptr_eq(&g[0].model, &job.model)) {
                Some(g) => g.push(job),
                None => groups.push(vec![job]),
            }
        }
        for group in groups {
            let model = Arc::clone(&group[0].model);
            let samples: usize = group.iter().map(|j| j.input.shape()[0]).sum();
            let start = Instant::now();
            run_group(group, form);
            if let Some(observe) = &shared.observer {
                observe(&model.meta().id, samples, start.elapsed());
            }
        }
    }
}

fn forward(model: &Model, input: &EncryptedTensor<f32>, form: EncryptedForm) -> Result<EncryptedTensor<f32>, JobError> {
    match catch_unwind(AssertUnwindSafe(|| model.forward_encrypted_in(input, form))) {
        Ok(Ok(out)) => Ok(out),
        Ok(Err(e)) => Err(JobError::Rejected(e.to_string())),
        Err(_) => Err(JobError::Panicked),
    }
}

fn run_alone(job: Job, form: EncryptedForm) {
    let start = Instant::now();
    let result = forward(&job.model, &job.input, form).map(|output| Computed {
        output,
        queue: start - job.enqueued,
        compute: start.elapsed(),
        batch_samples: job.input.shape()[0],
    });
    let _ = job.reply.send(result);
}

fn run_group(group: Vec<Job>, form: EncryptedForm) {
    if group.len() == 1 {
        return run_alone(group.into_iter().next().expect("one job"), form);
    }
    let start = Instant::now();
    let views: Vec<_> = group.iter().map(|j| j.input.data().view()).collect();
    let merged = ndarray::concatenate(Axis(1), &views)
        .map_err(|e| JobError::Rejected(e.to_string()))
        .and_then(|d| EncryptedTensor::from_data(d).map_err(|e| JobError::Rejected(e.to_string())));
    let output = merged.and_then(|m| forward(&group[0].model, &m, form));
    let Ok(output) = output else {
        // One bad ciphertext fails the whole pass: rerun each job on its own.
        for job in group {
            run_alone(job, form);
        }
        return;
    };
    let compute = start.elapsed();
    let total: usize = group.iter().map(|j| j.input.shape()[0]).sum();
    let mut offset = 0;
    for job in group {
        let n = job.input.shape()[0];
        let part = output.data().slice_axis(Axis(1), Slice::from(offset..offset + n)).to_owned();
        offset += n;
        let result = EncryptedTensor::from_data(part)
            .map(|output| Computed { output, queue: start - job.enqueued, compute, batch_samples: total })
            .map_err(|e| JobError::Rejected(e.to_string()));
        let _ = job.reply.send(result);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use more_core::{KeyOptions, SecretKey};
    use more_nn::{ElementFunction, Layer, LayerSpec, Model, ModelMeta};
    use ndarray::{Array1, Array2, ArrayD, IxDyn};

    fn model() -> Arc<Model> {
        let w = Array2::from_shape_fn((4, 3), |(i, j)| (i as f32 - 1.5) * 0.3 + j as f32 * 0.1);
        let b = Array1::from(vec![0.1, -0.2, 0.05]);
        let layers = vec![
            LayerSpec::Dense { inputs: 4, outputs: 3 }.build(vec![w.into_dyn(), b.into_dyn()]).unwrap(),
            Layer::parameter_free(LayerSpec::Activation { function: ElementFunction::Relu }).unwrap(),
        ];
        Arc::new(Model::new(ModelMeta::new("unit", "test"), &[4], layers).unwrap())
    }

    fn job(model: &Arc<Model>, input: EncryptedTensor<f32>) -> (Job, oneshot::Receiver<Result<Computed, JobError>>) {
        let (reply, rx) = oneshot::channel();
        (Job { model: Arc::clone(model), input, enqueued: Instant::now(), reply, _hold: None }, rx)
    }

    #[test]
    fn merged_pass_splits_answers_and_isolates_a_bad_ciphertext() {
        for form in [EncryptedForm::Coefficients, EncryptedForm::FourPlanes] {
            merged_pass(form);
        }
    }

    fn merged_pass(form: EncryptedForm) {
        let m = model();
        // Two clients, two keys: the coefficient form converts each sample with its own reference.
        let key = SecretKey::from_seed(3, KeyOptions::default()).unwrap();
        let other = SecretKey::from_seed(4, KeyOptions::default()).unwrap();
        let x1 = ArrayD::from_shape_vec(IxDyn(&[2, 4]), vec![0.1, 0.5, -0.3, 0.9, 1.0, -1.0, 0.2, 0.0]).unwrap();
        let x2 = ArrayD::from_shape_vec(IxDyn(&[1, 4]), vec![0.7, 0.1, 0.4, -0.6]).unwrap();
        let rotation = {
            let planes: Vec<f32> = [0f32, 1.0, -1.0, 0.0].iter().flat_map(|&v| [v; 4]).collect();
            EncryptedTensor::from_data(ArrayD::from_shape_vec(IxDyn(&[4, 1, 4]), planes).unwrap()).unwrap()
        };
        let check = |c: Computed, k: &SecretKey, x: &ArrayD<f32>| {
            let got = k.decrypt_tensor(&c.output);
            let want = m.forward_plain(x.view()).unwrap();
            assert!(got.iter().zip(want.iter()).all(|(g, w)| (g - w).abs() < 1e-4), "{form:?}: {got} vs {want}");
        };

        // All valid: one merged pass of 3 samples, each job gets its own rows.
        let (j1, r1) = job(&m, key.encrypt_tensor(&x1.view()).unwrap());
        let (j2, r2) = job(&m, other.encrypt_tensor(&x2.view()).unwrap());
        run_group(vec![j1, j2], form);
        for (rx, k, x) in [(r1, &key, &x1), (r2, &other, &x2)] {
            let c = rx.blocking_recv().unwrap().unwrap();
            assert_eq!(c.batch_samples, 3);
            check(c, k, x);
        }

        // One bad ciphertext in the group: the merged pass fails, each job is rerun alone.
        let (j1, r1) = job(&m, key.encrypt_tensor(&x1.view()).unwrap());
        let (jb, rb) = job(&m, rotation);
        let (j2, r2) = job(&m, other.encrypt_tensor(&x2.view()).unwrap());
        run_group(vec![j1, jb, j2], form);
        assert!(matches!(rb.blocking_recv().unwrap(), Err(JobError::Rejected(_))), "{form:?}");
        for (rx, k, x) in [(r1, &key, &x1), (r2, &other, &x2)] {
            let c = rx.blocking_recv().unwrap().unwrap();
            assert_eq!(c.batch_samples, x.shape()[0]);
            check(c, k, x);
        }
    }
}
