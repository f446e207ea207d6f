//! Training jobs: a client (the key owner) posts an encrypted data set and picks a network and
//! hyper-parameters; the server trains on the ciphertexts on its own thread with a capped rayon pool
//! ([`runner`]), streams progress with encrypted losses as Server-Sent Events, hands the encrypted
//! weights back once and then deletes everything of the job (also after a time to live).
//!
//! Jobs are kept on disk ([`store`]); when the server starts, a job that was queued or training starts
//! training again from the beginning (the same seed gives the same model), one that was already trained
//! keeps its model, and one that cannot be read back is reported failed — a client never waits on a job
//! that no longer exists. Routes: `GET /api/v1/training`, `POST /api/v1/jobs`, `GET /api/v1/jobs/{id}`,
//! `GET /api/v1/jobs/{id}/events`, `GET /api/v1/jobs/{id}/model`, `DELETE /api/v1/jobs/{id}`.

pub mod networks;
pub mod queue;
pub mod routes;
pub mod runner;
pub mod store;

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex, Weak};
use std::time::Duration;

use serde_json::{Value, json};
use tokio::sync::watch;

use more_enctrain::upload::JobRequest;

use crate::budget::Budget;
pub use routes::{create, delete, events, info, model, status};
use store::{Files, Record, State as JobState};

/// The limits of training jobs.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct TrainingLimits {
    /// Largest upload (inputs, targets and canaries), bytes.
    pub max_upload_bytes: usize,
    /// Jobs one client may have queued, training or waiting for download.
    pub max_jobs_per_client: usize,
    /// Jobs training at once (one training thread each, with [`TrainingLimits::threads`] threads of its
    /// own); the others wait in the fair queue.
    pub max_jobs: usize,
    /// Bytes the uploads of waiting jobs may hold together (on disk); beyond that a new job is refused
    /// (503 `training_queue_full`).
    pub max_queue_bytes: usize,
    /// Jobs held at once in all states (queued, training, waiting for download, failed until their time to
    /// live ends); beyond that a new job is refused (503 `training_queue_full`).
    pub max_held_jobs: usize,
    /// Most epochs a job may ask for.
    pub max_epochs: usize,
    /// Largest mini-batch.
    pub max_batch_size: usize,
    /// Training time allowed per job.
    pub max_wall: Duration,
    /// A job's files are deleted this long after it was posted (downloaded or not).
    pub ttl: Duration,
    /// Memory a job may take while training (its estimate: twice the upload plus a mini-batch's
    /// activations), bytes.
    pub max_memory_bytes: usize,
    /// Threads of the training pool.
    pub threads: usize,
}

impl Default for TrainingLimits {
    fn default() -> Self {
        TrainingLimits {
            max_upload_bytes: 64 << 20,
            max_jobs_per_client: 8,
            max_jobs: 1,
            max_queue_bytes: 1 << 30,
            max_held_jobs: 256,
            max_epochs: 200,
            max_batch_size: 512,
            max_wall: Duration::from_secs(30 * 60),
            ttl: Duration::from_secs(60 * 60),
            max_memory_bytes: 512 << 20,
            threads: 1,
        }
    }
}

/// One job in memory: its record, its events so far, a cancellation flag.
#[derive(Debug)]
pub struct Job {
    /// Its files.
    pub files: Files,
    pub(crate) inner: Mutex<Inner>,
    pub(crate) changed: watch::Sender<usize>,
    cancelled: AtomicBool,
}

#[derive(Debug)]
pub(crate) struct Inner {
    record: Record,
    events: EventLog,
    epochs_done: usize,
    /// Jobs that will start before this one, while it waits.
    ahead: Option<usize>,
}

/// One event of a job's stream.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Logged {
    /// Its id: increasing over the job's life, not contiguous (a coalesced `step` takes a new id).
    pub id: u64,
    /// `queued`, `started`, `step`, `epoch`, `done`, `failed`, `cancelled` or `resumed`.
    pub kind: &'static str,
    /// Its JSON data.
    pub data: String,
}

/// A job's events, bounded: a `step` (or `queued`) event replaces the event of its kind before it when
/// nothing came between them, so the log holds about two events per epoch however small the batches are
/// (at most [`TrainingLimits::max_epochs`] × 2 + a few) and one `queued` event however often the job's
/// place in the queue changed; a stream that resumes replays only what it missed.
#[derive(Debug, Default)]
pub struct EventLog {
    events: Vec<Logged>,
    next: u64,
}

impl EventLog {
    /// Appends an event (coalescing consecutive steps); returns its id.
    pub fn push(&mut self, kind: &'static str, data: String) -> u64 {
        let id = self.next;
        self.next += 1;
        if matches!(kind, "step" | "queued") && self.events.last().is_some_and(|e| e.kind == kind) {
            self.events.pop();
        }
        self.events.push(Logged { id, kind, data });
        id
    }

    /// The first event after id `after` (`None`: from the start).
    pub fn after(&self, after: Option<u64>) -> Option<&Logged> {
        let i = after.map_or(0, |a| self.events.partition_point(|e| e.id <= a));
        self.events.get(i)
    }

    /// Events held.
    pub fn len(&self) -> usize {
        self.events.len()
    }

    /// Whether none is held.
    pub fn is_empty(&self) -> bool {
        self.events.is_empty()
    }

    /// Whether the last event ends the stream (`done`, `failed`, `cancelled`).
    pub fn is_over(&self) -> bool {
        self.events.last().is_some_and(|e| is_final(e.kind))
    }
}

/// Whether an event of this kind ends a job's stream.
pub fn is_final(kind: &str) -> bool {
    matches!(kind, "done" | "failed" | "cancelled")
}

impl Job {
    fn new(files: Files, record: Record) -> Arc<Self> {
        Arc::new(Job {
            files,
            inner: Mutex::new(Inner { record, events: EventLog::default(), epochs_done: 0, ahead: None }),
            changed: watch::channel(0).0,
            cancelled: AtomicBool::new(false),
        })
    }

    pub(crate) fn lock(&self) -> std::sync::MutexGuard<'_, Inner> {
        self.inner.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// The job's id.
    pub fn id(&self) -> String {
        self.lock().record.id.clone()
    }

    /// The header it was posted with.
    pub fn request(&self) -> JobRequest {
        self.lock().record.request.clone()
    }

    /// Whether the client cancelled it.
    pub fn is_cancelled(&self) -> bool {
        self.cancelled.load(Ordering::SeqCst)
    }

    /// Appends an event for the stream.
    pub fn event(&self, kind: &'static str, data: Value) {
        let id = self.lock().events.push(kind, data.to_string());
        self.changed.send_replace(id as usize + 1);
    }

    /// The first event after id `after`, and whether the stream is over with none left.
    pub fn next_event(&self, after: Option<u64>) -> (Option<Logged>, bool) {
        let inner = self.lock();
        let next = inner.events.after(after).cloned();
        let over = next.is_none() && inner.events.is_over();
        (next, over)
    }

    /// Tells the job its place in the queue: a `queued` event `{"rows", "ahead"}` when it changed.
    pub fn set_ahead(&self, ahead: usize) {
        let rows = {
            let mut inner = self.lock();
            if inner.ahead == Some(ahead) {
                return;
            }
            inner.ahead = Some(ahead);
            inner.record.rows
        };
        self.event("queued", json!({"rows": rows, "ahead": ahead}));
    }

    /// Events the job's log holds now.
    pub fn logged_events(&self) -> usize {
        self.lock().events.len()
    }

    fn set_state(&self, state: JobState, error: Option<(String, String)>) {
        let mut inner = self.lock();
        inner.record.state = state;
        inner.record.error = error;
        if state == JobState::Running {
            inner.record.attempts += 1;
        }
        if let Err(e) = self.files.save(&inner.record) {
            tracing::warn!(job = tag(&inner.record.id), error = %e, "cannot save a job's record");
        }
    }

    /// Training starts.
    pub fn start(&self) {
        self.lock().ahead = None;
        self.set_state(JobState::Running, None);
    }

    /// An epoch ended.
    pub fn epoch_done(&self, epoch: usize) {
        self.lock().epochs_done = epoch;
    }

    /// Trained: the model is on disk.
    pub fn finish(&self, model_bytes: usize, seconds: f64) {
        self.set_state(JobState::Done, None);
        let url = format!("/api/v1/jobs/{}/model", self.id());
        self.event("done", json!({"model_url": url, "model_bytes": model_bytes, "seconds": seconds}));
    }

    /// Failed: the stream and the status say why. The upload is deleted at once (the record stays, so the
    /// client can read why, until the job's time to live ends).
    pub fn fail(&self, code: &str, message: String) {
        self.set_state(JobState::Failed, Some((code.to_string(), message.clone())));
        for file in [self.files.data(), self.files.model()] {
            if let Err(e) = std::fs::remove_file(&file)
                && e.kind() != std::io::ErrorKind::NotFound
            {
                tracing::warn!(job = tag(&self.id()), error = %e, "cannot delete a failed job's file");
            }
        }
        self.event("failed", json!({"error": code, "message": message}));
    }

    pub(crate) fn status(&self) -> Value {
        let inner = self.lock();
        let r = &inner.record;
        json!({
            "id": r.id, "state": r.state, "network": r.request.network, "rows": r.rows,
            "epochs": r.request.epochs, "epochs_done": inner.epochs_done, "batch_size": r.request.batch_size,
            "lr": r.request.lr, "lr_decay": r.request.lr_decay, "optimizer": r.request.optimizer,
            "seed": r.request.seed, "upload_bytes": r.upload_bytes, "created": r.created,
            "attempts": r.attempts,
            "error": r.error.as_ref().map(|(code, message)| json!({"error": code, "message": message})),
            "status_url": format!("/api/v1/jobs/{}", r.id),
            "events_url": format!("/api/v1/jobs/{}/events", r.id),
            "model_url": format!("/api/v1/jobs/{}/model", r.id),
        })
    }
}

/// All jobs, their directory and the queue of the training thread.
#[derive(Debug)]
pub struct Jobs {
    dir: PathBuf,
    limits: TrainingLimits,
    map: Mutex<HashMap<String, Arc<Job>>>,
    /// Jobs waiting to train, served round-robin by client.
    waiting: Arc<queue::Waiting<Arc<Job>>>,
    /// Memory for uploads being read and checked: each reserves [`UPLOAD_MEMORY_PER_BYTE`] times the bytes
    /// it has received, as they arrive.
    upload_budget: Budget,
    /// Uploads checked (decoded) at once, each on a blocking thread.
    checks: Arc<tokio::sync::Semaphore>,
}

/// Uploads the upload budget holds at the upload limit, and uploads checked at once.
pub const CONCURRENT_UPLOADS: usize = 2;

/// Memory an upload holds per byte while it is read and checked: the body, its decoded planes and their
/// coefficient form.
pub const UPLOAD_MEMORY_PER_BYTE: usize = 3;

/// Bytes one event of a job's log may take (an `epoch` event with its encrypted loss is about 100 bytes of
/// JSON, plus the entry).
pub const EVENT_BYTES: usize = 256;

impl Jobs {
    /// Memory training may hold at most: the upload budget ([`CONCURRENT_UPLOADS`] uploads of the limit,
    /// [`UPLOAD_MEMORY_PER_BYTE`] times each), each job training (its memory limit, plus its data read back
    /// from disk) and the event logs of the jobs held (about two events per epoch each). Waiting jobs hold
    /// their uploads on disk, not in memory.
    pub fn memory_bound(&self) -> usize {
        let l = self.limits;
        let logs = l.max_held_jobs.saturating_mul(2 * l.max_epochs + 8).saturating_mul(EVENT_BYTES);
        let training = l.max_jobs.max(1).saturating_mul(l.max_upload_bytes.saturating_add(l.max_memory_bytes));
        self.upload_budget.total().saturating_add(training).saturating_add(logs)
    }

    /// Jobs waiting to train, and the bytes their uploads hold.
    pub fn queued(&self) -> (usize, usize) {
        (self.waiting.len(), self.waiting.bytes())
    }

    /// The memory budget of uploads being read and checked.
    pub fn upload_budget(&self) -> &Budget {
        &self.upload_budget
    }

    /// Opens `dir` (created if missing), takes up the jobs found there and starts the training thread and
    /// the sweeper of expired jobs.
    pub fn open(dir: &Path, limits: TrainingLimits) -> std::io::Result<Arc<Jobs>> {
        std::fs::create_dir_all(dir)?;
        let waiting = queue::Waiting::new();
        let jobs = Arc::new(Jobs {
            dir: dir.to_path_buf(),
            limits,
            map: Mutex::new(HashMap::new()),
            waiting: waiting.clone(),
            upload_budget: Budget::new(
                (CONCURRENT_UPLOADS * UPLOAD_MEMORY_PER_BYTE).saturating_mul(limits.max_upload_bytes).max(1 << 20),
            ),
            checks: Arc::new(tokio::sync::Semaphore::new(CONCURRENT_UPLOADS)),
        });
        let (threads, wall) = (limits.threads, limits.max_wall);
        for i in 0..limits.max_jobs.max(1) {
            let waiting = waiting.clone();
            std::thread::Builder::new()
                .name(format!("more-train-job-{i}"))
                .spawn(move || runner::run(waiting, threads, wall))?;
        }
        jobs.recover()?;
        let weak = Arc::downgrade(&jobs);
        let every = (limits.ttl / 4).clamp(Duration::from_millis(50), Duration::from_secs(30));
        std::thread::Builder::new().name("more-jobs-sweep".into()).spawn(move || sweep(weak, every))?;
        Ok(jobs)
    }

    /// The limits.
    pub fn limits(&self) -> TrainingLimits {
        self.limits
    }

    pub(crate) fn map(&self) -> std::sync::MutexGuard<'_, HashMap<String, Arc<Job>>> {
        self.map.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Queues a job if the waiting uploads stay within [`TrainingLimits::max_queue_bytes`]; `Err` with the
    /// bytes they hold now. Every waiting job learns its (new) place.
    pub(crate) fn enqueue(&self, job: Arc<Job>, max_bytes: usize) -> Result<(), usize> {
        let order = self.waiting.push(job, max_bytes)?;
        tell_places(&order);
        Ok(())
    }

    /// Reads the jobs left by a previous run: queued or training ones train again, trained ones keep
    /// their model, unreadable ones are reported failed.
    fn recover(&self) -> std::io::Result<()> {
        let mut found: Vec<Arc<Job>> = Vec::new();
        for entry in std::fs::read_dir(&self.dir)? {
            let entry = entry?;
            if !entry.file_type()?.is_dir() {
                continue;
            }
            let id = entry.file_name().to_string_lossy().to_string();
            if !is_job_id(&id) {
                // Not a job's directory (job ids are 32 hex digits): left alone, never served or deleted.
                tracing::warn!(dir = %entry.path().display(), "not a job's directory: ignored");
                continue;
            }
            let files = Files::new(&self.dir, &id);
            let record = match files.load() {
                Ok(r) if r.id == id => r,
                other => {
                    tracing::warn!(job = tag(&id), error = ?other.err(), "unreadable job record: reported failed");
                    let record = Record {
                        id: id.clone(),
                        client: String::new(),
                        request: JobRequest {
                            network: String::new(),
                            epochs: 0,
                            batch_size: 0,
                            lr: 0.0,
                            lr_decay: 1.0,
                            optimizer: more_enctrain::upload::OptimizerKind::Adam,
                            seed: 0,
                        },
                        rows: 0,
                        upload_bytes: 0,
                        memory_bytes: 0,
                        created: store::now(),
                        state: JobState::Failed,
                        error: None,
                        attempts: 0,
                    };
                    let job = Job::new(files, record);
                    job.fail("lost", "the server restarted and could not read this job back".into());
                    self.map().insert(id, job);
                    continue;
                }
            };
            let state = record.state;
            let job = Job::new(files, record);
            match state {
                JobState::Done if !job.files.model().is_file() => {
                    job.fail("lost", "the server restarted and the trained model is missing".into())
                }
                JobState::Done => {
                    let url = format!("/api/v1/jobs/{id}/model");
                    job.event("done", json!({"model_url": url, "model_bytes": null, "seconds": null}));
                }
                JobState::Failed => {
                    let (code, message) = job.lock().record.error.clone().unwrap_or_default();
                    job.event("failed", json!({"error": code, "message": message}));
                }
                JobState::Queued | JobState::Running if job.lock().record.attempts >= 3 => {
                    job.fail("lost", "training was interrupted by server restarts three times".into())
                }
                JobState::Queued | JobState::Running => {
                    job.set_state(JobState::Queued, None);
                    job.event(
                        "resumed",
                        json!({"message": "the server restarted; training starts again from epoch 1"}),
                    );
                    found.push(job.clone());
                }
            }
            self.map().insert(id, job);
        }
        found.sort_by_key(|j| j.lock().record.created);
        for job in found {
            // Jobs taken up after a restart wait whatever the queue holds: they were accepted before.
            let _ = self.enqueue(job, usize::MAX);
        }
        Ok(())
    }

    /// Deletes jobs older than the time to live.
    fn expire(&self) {
        let cutoff = store::now().saturating_sub(self.limits.ttl.as_secs());
        let expired: Vec<Arc<Job>> = {
            let mut map = self.map();
            let ids: Vec<String> = map
                .iter()
                .filter(|(_, j)| j.lock().record.created < cutoff || self.limits.ttl.is_zero())
                .map(|(id, _)| id.clone())
                .collect();
            ids.iter().filter_map(|id| map.remove(id)).collect()
        };
        for job in expired {
            tracing::info!(job = tag(&job.id()), "time to live over: deleted");
            self.cancel(&job);
        }
    }
}

/// Whether `id` has the form of a job id: 32 lowercase hex digits (128 bits from the OS CSPRNG).
pub fn is_job_id(id: &str) -> bool {
    id.len() == 32 && id.bytes().all(|b| matches!(b, b'0'..=b'9' | b'a'..=b'f'))
}

/// A job id as the log shows it: its first 6 hex digits, enough to tell jobs apart in a log and too few to
/// use it (a job id is a bearer capability: whoever has it can follow, download or delete the job).
pub fn tag(id: &str) -> String {
    id.chars().take(6).collect()
}

/// Tells each waiting job its place: the jobs before it in `order`.
pub(crate) fn tell_places(order: &[Arc<Job>]) {
    for (ahead, job) in order.iter().enumerate() {
        job.set_ahead(ahead);
    }
}

impl queue::Queued for Arc<Job> {
    fn client(&self) -> String {
        self.lock().record.client.clone()
    }

    fn bytes(&self) -> usize {
        self.lock().record.upload_bytes
    }
}

impl Drop for Jobs {
    fn drop(&mut self) {
        self.waiting.close();
    }
}

impl Jobs {
    /// Cancels a job and deletes its files (the training thread deletes them if it is training); the jobs
    /// behind it in the queue move up.
    pub(crate) fn cancel(&self, job: &Arc<Job>) {
        remove(job);
        let order = self.waiting.remove(|j| Arc::ptr_eq(j, job));
        tell_places(&order);
    }
}

/// Cancels a job and deletes its files (the training thread deletes them if it is training).
fn remove(job: &Job) {
    job.cancelled.store(true, Ordering::SeqCst);
    let running = job.lock().record.state == JobState::Running;
    if !running {
        job.files.remove();
    }
    job.event("cancelled", json!({"message": "the job was deleted"}));
}

fn sweep(jobs: Weak<Jobs>, every: Duration) {
    loop {
        std::thread::sleep(every);
        match jobs.upgrade() {
            Some(j) => j.expire(),
            None => return,
        }
    }
}
