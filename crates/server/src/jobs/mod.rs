//! Training jobs: a client (the key owner) posts an encrypted data set and picks a network and
//! hyper-parameters; the server trains on the ciphertexts on its own thread with a capped rayon pool
//! ([`runner`]), streams progress with encrypted losses as Server-Sent Events, hands the encrypted
//! weights back once and then deletes everything of the job (also after a time to live).
//!
//! By default jobs are kept in this process and on disk ([`store`]); when the server starts, a job that was
//! queued or training starts training again from the beginning (the same seed gives the same model), one
//! that was already trained keeps its model, and one that cannot be read back is reported failed — a
//! client never waits on a job that no longer exists. With `--state redis://…` they live in Redis instead
//! ([`shared`]), where every replica serves every job and a job whose replica died is trained by another.
//! Routes: `GET /api/v1/training`, `POST /api/v1/jobs`, `GET /api/v1/jobs/{id}`,
//! `GET /api/v1/jobs/{id}/events`, `GET /api/v1/jobs/{id}/model`, `DELETE /api/v1/jobs/{id}`.

pub mod lua;
pub mod networks;
pub mod queue;
pub mod routes;
pub mod runner;
pub mod shared;
pub mod store;

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex, Weak};
use std::time::Duration;

use axum::http::StatusCode;
use futures_util::stream::BoxStream;
use serde_json::{Value, json};
use tokio::sync::watch;

use more_enctrain::upload::JobRequest;

use crate::ApiError;
use crate::budget::Budget;
use crate::state_store::Redis;
pub use routes::{create, delete, events, info, model, status};
use shared::SharedJobs;
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

/// Every kind of event a job's stream has.
pub const EVENT_KINDS: [&str; 8] = ["queued", "started", "step", "epoch", "done", "failed", "cancelled", "resumed"];

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
    /// An empty log whose first id is `first`: a job taken up again after a restart numbers its new events
    /// above every id its earlier run gave, so a client that reconnects with the `Last-Event-ID` it had
    /// gets them all (the `resumed` event first).
    pub fn starting_at(first: u64) -> Self {
        EventLog { events: Vec::new(), next: first }
    }

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
            // A place told late (the job was taken meanwhile) is no longer true.
            if inner.ahead == Some(ahead) || inner.record.state != JobState::Queued {
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
        status_json(&inner.record, inner.epochs_done)
    }
}

/// What `GET /api/v1/jobs/{id}` answers.
fn status_json(r: &Record, epochs_done: usize) -> Value {
    json!({
            "id": r.id, "state": r.state, "network": r.request.network, "rows": r.rows,
            "epochs": r.request.epochs, "epochs_done": epochs_done, "batch_size": r.request.batch_size,
            "lr": r.request.lr, "lr_decay": r.request.lr_decay, "optimizer": r.request.optimizer,
            "seed": r.request.seed, "upload_bytes": r.upload_bytes, "created": r.created,
            "attempts": r.attempts,
            "error": r.error.as_ref().map(|(code, message)| json!({"error": code, "message": message})),
            "status_url": format!("/api/v1/jobs/{}", r.id),
            "events_url": format!("/api/v1/jobs/{}/events", r.id),
            "model_url": format!("/api/v1/jobs/{}/model", r.id),
    })
}

impl runner::Training for Job {
    fn id(&self) -> String {
        Job::id(self)
    }

    fn request(&self) -> JobRequest {
        Job::request(self)
    }

    fn event(&self, kind: &'static str, data: Value) {
        Job::event(self, kind, data)
    }

    fn epoch_event(&self, epoch: usize, data: Value) {
        self.lock().epochs_done = epoch;
        Job::event(self, "epoch", data)
    }

    fn should_stop(&self) -> bool {
        self.is_cancelled()
    }

    fn data(&self) -> Result<Vec<u8>, runner::Failure> {
        std::fs::read(self.files.data()).map_err(|e| ("lost", format!("the job's data cannot be read: {e}")))
    }
}

/// The training jobs of this server: their limits, the memory of uploads being checked, and where the
/// jobs are kept.
#[derive(Debug)]
pub struct Jobs {
    limits: TrainingLimits,
    /// Memory for uploads being read and checked: each reserves [`UPLOAD_MEMORY_PER_BYTE`] times the bytes
    /// it has received, as they arrive.
    upload_budget: Budget,
    /// Uploads checked (decoded) at once, each on a blocking thread.
    checks: Arc<tokio::sync::Semaphore>,
    store: Store,
}

/// Where jobs are kept.
#[derive(Debug)]
enum Store {
    /// In this process, on disk in its jobs directory.
    Local(Local),
    /// In Redis, shared by every replica.
    Shared { jobs: SharedJobs, closed: Arc<AtomicBool>, replica: String },
}

/// Jobs kept by this process: their directory, the jobs in memory and the queue of the training threads.
#[derive(Debug)]
struct Local {
    dir: PathBuf,
    limits: TrainingLimits,
    map: Mutex<HashMap<String, Arc<Job>>>,
    /// Jobs waiting to train, served round-robin by client.
    waiting: Arc<queue::Waiting<Arc<Job>>>,
}

/// Uploads the upload budget holds at the upload limit, and uploads checked at once.
pub const CONCURRENT_UPLOADS: usize = 2;

/// Memory an upload holds per byte while it is read and checked: the body, its decoded planes and their
/// coefficient form.
pub const UPLOAD_MEMORY_PER_BYTE: usize = 3;

/// Bytes one event of a job's log may take (an `epoch` event with its encrypted loss is about 100 bytes of
/// JSON, plus the entry).
pub const EVENT_BYTES: usize = 256;

/// A job's events as a stream follows them.
pub type EventStream = BoxStream<'static, Logged>;

fn unknown_job() -> ApiError {
    ApiError::new(
        StatusCode::NOT_FOUND,
        "unknown_job",
        "no such job: it was never created, was deleted after its model was downloaded, was cancelled or expired",
    )
}

/// 503 `training_queue_full`: the queue holds all it may; retrying later helps.
fn queue_full(why: String) -> ApiError {
    ApiError::unavailable("training_queue_full", format!("{why}; retry later"))
}

fn too_many_client_jobs(max: usize) -> ApiError {
    ApiError::new(
        StatusCode::TOO_MANY_REQUESTS,
        "too_many_client_jobs",
        format!("you have {max} training jobs, the limit per client; download or delete one first"),
    )
}

fn queue_bytes_full(bytes: usize, max: usize) -> ApiError {
    queue_full(format!("the waiting jobs hold {} MiB of uploads, the queue's limit of {} MiB", bytes >> 20, max >> 20))
}

impl Jobs {
    fn with_store(limits: TrainingLimits, store: Store) -> Jobs {
        Jobs {
            limits,
            upload_budget: Budget::new(
                (CONCURRENT_UPLOADS * UPLOAD_MEMORY_PER_BYTE).saturating_mul(limits.max_upload_bytes).max(1 << 20),
            ),
            checks: Arc::new(tokio::sync::Semaphore::new(CONCURRENT_UPLOADS)),
            store,
        }
    }

    /// Memory training may hold at most: the upload budget ([`CONCURRENT_UPLOADS`] uploads of the limit,
    /// [`UPLOAD_MEMORY_PER_BYTE`] times each), each job training (its memory limit, plus its data read back)
    /// and, for jobs kept in this process, the event logs of the jobs held (about two events per epoch
    /// each). Waiting jobs hold their uploads on disk (or in Redis), not in memory.
    pub fn memory_bound(&self) -> usize {
        let l = self.limits;
        let logs = match self.store {
            Store::Local(_) => l.max_held_jobs.saturating_mul(2 * l.max_epochs + 8).saturating_mul(EVENT_BYTES),
            Store::Shared { .. } => 0,
        };
        let training = l.max_jobs.max(1).saturating_mul(l.max_upload_bytes.saturating_add(l.max_memory_bytes));
        self.upload_budget.total().saturating_add(training).saturating_add(logs)
    }

    /// The memory budget of uploads being read and checked.
    pub fn upload_budget(&self) -> &Budget {
        &self.upload_budget
    }

    /// The limits.
    pub fn limits(&self) -> TrainingLimits {
        self.limits
    }

    /// Whether jobs live in Redis, shared by every replica.
    pub fn is_shared(&self) -> bool {
        matches!(self.store, Store::Shared { .. })
    }

    /// Opens `dir` (created if missing), takes up the jobs found there and starts the training threads and
    /// the sweeper of expired jobs.
    pub fn open(dir: &Path, limits: TrainingLimits) -> std::io::Result<Arc<Jobs>> {
        std::fs::create_dir_all(dir)?;
        let waiting = queue::Waiting::new();
        let local = Local { dir: dir.to_path_buf(), limits, map: Mutex::new(HashMap::new()), waiting: waiting.clone() };
        let jobs = Arc::new(Jobs::with_store(limits, Store::Local(local)));
        let (threads, wall) = (limits.threads, limits.max_wall);
        for i in 0..limits.max_jobs.max(1) {
            let waiting = waiting.clone();
            std::thread::Builder::new()
                .name(format!("more-train-job-{i}"))
                .spawn(move || runner::run(waiting, threads, wall))?;
        }
        jobs.local().expect("local").recover()?;
        let weak = Arc::downgrade(&jobs);
        let every = (limits.ttl / 4).clamp(Duration::from_millis(50), Duration::from_secs(30));
        std::thread::Builder::new().name("more-jobs-sweep".into()).spawn(move || sweep(weak, every))?;
        Ok(jobs)
    }

    /// Keeps jobs in `redis`, shared by every replica on it, and starts this replica's training threads
    /// (taking jobs from the shared queue) and its sweeper (expired jobs, and jobs of replicas that died).
    pub fn open_shared(redis: Redis, limits: TrainingLimits) -> std::io::Result<Arc<Jobs>> {
        let closed = Arc::new(AtomicBool::new(false));
        let replica = shared::replica_name();
        for i in 0..limits.max_jobs.max(1) {
            let (redis, replica, closed) = (redis.clone(), replica.clone(), closed.clone());
            let (threads, wall) = (limits.threads, limits.max_wall);
            std::thread::Builder::new()
                .name(format!("more-train-job-{i}"))
                .spawn(move || shared::run(redis, replica, threads, wall, closed))?;
        }
        {
            let (redis, closed, ttl) = (redis.clone(), closed.clone(), limits.ttl);
            std::thread::Builder::new()
                .name("more-jobs-sweep".into())
                .spawn(move || shared::sweep(redis, ttl, closed))?;
        }
        Ok(Arc::new(Jobs::with_store(limits, Store::Shared { jobs: SharedJobs::new(redis), closed, replica })))
    }

    fn local(&self) -> Option<&Local> {
        match &self.store {
            Store::Local(l) => Some(l),
            Store::Shared { .. } => None,
        }
    }

    /// Refuses a new job of `client` (whose body declares `declared` bytes) early, before its body is read,
    /// when a bound is reached already. The bounds are checked again when the job is stored.
    pub(crate) async fn admit(&self, client: &str, declared: usize) -> Result<(), ApiError> {
        let l = self.limits;
        let (held, of_client, waiting, bytes) = match &self.store {
            Store::Local(local) => {
                let map = local.map();
                let of_client = map
                    .values()
                    .filter(|j| {
                        let inner = j.lock();
                        inner.record.state.holds_resources() && inner.record.client == client
                    })
                    .count();
                (map.len(), of_client, local.waiting.len(), local.waiting.bytes())
            }
            Store::Shared { jobs, .. } => jobs.counts(client).await?,
        };
        if held >= l.max_held_jobs {
            return Err(queue_full(format!("the server holds {} training jobs, its limit", l.max_held_jobs)));
        }
        if waiting > 0 && bytes + declared > l.max_queue_bytes {
            return Err(queue_full(format!(
                "{waiting} jobs wait with {} MiB of uploads, the queue's limit of {} MiB",
                bytes >> 20,
                l.max_queue_bytes >> 20
            )));
        }
        if of_client >= l.max_jobs_per_client {
            return Err(too_many_client_jobs(l.max_jobs_per_client));
        }
        Ok(())
    }

    /// Stores a checked upload and queues its job; the job's status.
    pub(crate) async fn insert(&self, record: Record, body: Vec<u8>) -> Result<Value, ApiError> {
        let l = self.limits;
        match &self.store {
            Store::Local(local) => {
                let files = Files::new(&local.dir, &record.id);
                let written = {
                    let (files, record) = (files.clone(), record.clone());
                    tokio::task::spawn_blocking(move || files.create(&record, &body))
                        .await
                        .map_err(|e| ApiError::internal("storing an upload", e))?
                };
                if let Err(e) = written {
                    files.remove();
                    return Err(ApiError::internal("storing an upload", e));
                }
                let id = record.id.clone();
                let job = Job::new(files, record);
                if let Err(bytes) = local.enqueue(job.clone(), l.max_queue_bytes) {
                    job.files.remove();
                    return Err(queue_bytes_full(bytes, l.max_queue_bytes));
                }
                local.map().insert(id, job.clone());
                Ok(job.status())
            }
            Store::Shared { jobs, .. } => match jobs.create(&record, body, &l).await? {
                Ok(()) => Ok(status_json(&record, 0)),
                Err(shared::Refused::Held(n)) => {
                    Err(queue_full(format!("the server holds {n} training jobs, its limit")))
                }
                Err(shared::Refused::Client) => Err(too_many_client_jobs(l.max_jobs_per_client)),
                Err(shared::Refused::QueueBytes(bytes)) => Err(queue_bytes_full(bytes, l.max_queue_bytes)),
            },
        }
    }

    /// The job's status.
    pub(crate) async fn status(&self, id: &str) -> Result<Value, ApiError> {
        if !is_job_id(id) {
            return Err(unknown_job());
        }
        match &self.store {
            Store::Local(local) => Ok(local.find(id)?.status()),
            Store::Shared { jobs, .. } => {
                let found = jobs.find(id).await?.ok_or_else(unknown_job)?;
                Ok(status_json(&found.record, found.epochs_done))
            }
        }
    }

    /// Cancels a job and deletes everything of it.
    pub(crate) async fn delete(&self, id: &str) -> Result<(), ApiError> {
        if !is_job_id(id) {
            return Err(unknown_job());
        }
        match &self.store {
            Store::Local(local) => {
                let job = local.find(id)?;
                local.map().remove(id);
                local.cancel(&job);
                Ok(())
            }
            Store::Shared { jobs, .. } => jobs.delete(id).await?.then_some(()).ok_or_else(unknown_job),
        }
    }

    /// The trained model, once: the job is deleted as it is handed over.
    pub(crate) async fn take_model(&self, id: &str) -> Result<Vec<u8>, ApiError> {
        if !is_job_id(id) {
            return Err(unknown_job());
        }
        let not_ready = || {
            ApiError::new(
                StatusCode::CONFLICT,
                "not_ready",
                "the job is still training; follow its events until \"done\"",
            )
        };
        let failed = |code: &str, message: &str| {
            ApiError::new(StatusCode::CONFLICT, "job_failed", format!("the job failed ({code}): {message}"))
        };
        match &self.store {
            Store::Local(local) => {
                let job = local.find(id)?;
                let (state, error) = {
                    let inner = job.lock();
                    (inner.record.state, inner.record.error.clone())
                };
                match state {
                    JobState::Done => {}
                    JobState::Failed => {
                        let (code, message) = error.unwrap_or_default();
                        return Err(failed(&code, &message));
                    }
                    JobState::Queued | JobState::Running => return Err(not_ready()),
                }
                let path = job.files.model();
                let bytes = tokio::task::spawn_blocking(move || std::fs::read(path))
                    .await
                    .map_err(|e| ApiError::internal("reading a model", e))?
                    .map_err(|e| ApiError::internal("reading a model", e))?;
                local.map().remove(id);
                local.cancel(&job);
                Ok(bytes)
            }
            Store::Shared { jobs, .. } => match jobs.take_model(id).await? {
                Ok(bytes) => Ok(bytes),
                Err(shared::NoModel::Unknown) => Err(unknown_job()),
                Err(shared::NoModel::NotReady) => Err(not_ready()),
                Err(shared::NoModel::Failed(code, message)) => Err(failed(&code, &message)),
                Err(shared::NoModel::Lost) => Err(failed("lost", "the trained model is missing from the shared state")),
            },
        }
    }

    /// The job's events after id `after` (all of them with `None`), then the new ones as they come, until
    /// the stream is over (the job done, failed or cancelled).
    pub(crate) async fn follow(&self, id: &str, after: Option<u64>) -> Result<EventStream, ApiError> {
        if !is_job_id(id) {
            return Err(unknown_job());
        }
        use futures_util::StreamExt;
        match &self.store {
            Store::Local(local) => {
                let job = local.find(id)?;
                let rx = job.changed.subscribe();
                Ok(futures_util::stream::unfold((job, rx, after), |(job, mut rx, after)| async move {
                    loop {
                        let (next, over) = job.next_event(after);
                        if let Some(e) = next {
                            let id = e.id;
                            return Some((e, (job, rx, Some(id))));
                        }
                        if over || rx.changed().await.is_err() {
                            return None;
                        }
                    }
                })
                .boxed())
            }
            Store::Shared { jobs, .. } => {
                jobs.find(id).await?.ok_or_else(unknown_job)?;
                let start = (jobs.clone(), id.to_string(), after, std::collections::VecDeque::<Logged>::new());
                Ok(futures_util::stream::unfold(start, |(jobs, id, after, mut pending)| async move {
                    loop {
                        if let Some(e) = pending.pop_front() {
                            let last = Some(e.id);
                            return Some((e, (jobs, id, last, pending)));
                        }
                        match jobs.events_after(&id, after).await {
                            Ok(None) => return None,
                            Ok(Some((events, over))) if events.is_empty() => {
                                if over {
                                    return None;
                                }
                                tokio::time::sleep(shared::POLL_EVERY).await;
                            }
                            Ok(Some((events, _))) => pending.extend(events),
                            // Redis is unreachable: the stream stays open (heartbeats go on) and reads again.
                            Err(_) => tokio::time::sleep(Duration::from_secs(1)).await,
                        }
                    }
                })
                .boxed())
            }
        }
    }

    /// The server stops: no new job is taken, and with shared state the jobs this replica trains are let
    /// go at once (their leases deleted) so another replica takes them up within a sweep instead of after
    /// the lease's time to live. Jobs kept in this process wait on disk for the next start.
    pub async fn stop(&self) {
        match &self.store {
            Store::Local(local) => local.waiting.close(),
            Store::Shared { jobs, closed, replica } => {
                closed.store(true, Ordering::SeqCst);
                match jobs.release(replica).await {
                    Ok(0) => {}
                    Ok(n) => tracing::info!(jobs = n, "jobs in training handed back to the shared queue"),
                    Err(_) => tracing::warn!("cannot hand jobs back: other replicas take them when the leases end"),
                }
            }
        }
    }

    /// Jobs held in this process and their logged events (for tests; `None` with shared state).
    pub fn logged_events(&self, id: &str) -> Option<usize> {
        self.local()?.map().get(id).map(|j| j.logged_events())
    }
}

impl Local {
    fn map(&self) -> std::sync::MutexGuard<'_, HashMap<String, Arc<Job>>> {
        self.map.lock().unwrap_or_else(|e| e.into_inner())
    }

    fn find(&self, id: &str) -> Result<Arc<Job>, ApiError> {
        self.map().get(id).cloned().ok_or_else(unknown_job)
    }

    /// Queues a job if the waiting uploads stay within [`TrainingLimits::max_queue_bytes`]; `Err` with the
    /// bytes they hold now. Every waiting job learns its (new) place.
    fn enqueue(&self, job: Arc<Job>, max_bytes: usize) -> Result<(), usize> {
        self.waiting.push(job, max_bytes, tell_places)
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
            // The earlier run's ids counted from 0, one per event: milliseconds since the epoch are above
            // any of them.
            job.lock().events = EventLog::starting_at(store::now().saturating_mul(1000));
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
        match &self.store {
            Store::Local(local) => local.waiting.close(),
            Store::Shared { closed, .. } => closed.store(true, Ordering::SeqCst),
        }
    }
}

impl Local {
    /// Cancels a job and deletes its files (the training thread deletes them if it is training); the jobs
    /// behind it in the queue move up.
    fn cancel(&self, job: &Arc<Job>) {
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
            Some(j) => {
                if let Some(local) = j.local() {
                    local.expire()
                }
            }
            None => return,
        }
    }
}
