//! Training jobs: a client (the key owner) posts an encrypted data set and picks a network and
//! hyper-parameters; the server trains on the ciphertexts on its own thread with a capped rayon pool
//! ([`runner`]), streams progress with encrypted losses as Server-Sent Events, hands the encrypted
//! weights back once and then deletes everything of the job (also after a time to live).
//!
//! By default jobs are kept in this process ([`local`]) and on disk ([`store`]); when the server starts, a job that was
//! queued or training starts training again from the beginning (the same seed gives the same model), one
//! that was already trained keeps its model, and one that cannot be read back is reported failed — a
//! client never waits on a job that no longer exists. With `--state redis://…` they live in Redis instead
//! ([`shared`]), where every replica serves every job and a job whose replica died is trained by another.
//! Routes: `GET /api/v1/training`, `POST /api/v1/jobs`, `GET /api/v1/jobs/{id}`,
//! `GET /api/v1/jobs/{id}/events`, `GET /api/v1/jobs/{id}/model`, `DELETE /api/v1/jobs/{id}`.

pub mod local;
pub mod lua;
pub mod networks;
pub mod queue;
pub mod routes;
pub mod runner;
pub mod shared;
pub mod store;

use std::collections::HashMap;
use std::path::Path;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex, Weak};
use std::time::Duration;

use axum::http::StatusCode;
use futures_util::stream::BoxStream;
use serde_json::{Value, json};

use crate::ApiError;
use crate::budget::Budget;
use crate::state_store::Redis;
use local::Local;
pub use local::{EventLog, Job};
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

/// Whether an event of this kind ends a job's stream.
pub fn is_final(kind: &str) -> bool {
    matches!(kind, "done" | "failed" | "cancelled")
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
                .spawn(move || local::run(waiting, threads, wall))?;
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

/// Whether `id` has the form of a job id: 32 lowercase hex digits (128 bits from the OS CSPRNG).
pub fn is_job_id(id: &str) -> bool {
    id.len() == 32 && id.bytes().all(|b| matches!(b, b'0'..=b'9' | b'a'..=b'f'))
}

/// A job id as the log shows it: its first 6 hex digits, enough to tell jobs apart in a log and too few to
/// use it (a job id is a bearer capability: whoever has it can follow, download or delete the job).
pub fn tag(id: &str) -> String {
    id.chars().take(6).collect()
}

impl Drop for Jobs {
    fn drop(&mut self) {
        match &self.store {
            Store::Local(local) => local.waiting.close(),
            Store::Shared { closed, .. } => closed.store(true, Ordering::SeqCst),
        }
    }
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
