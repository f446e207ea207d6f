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
pub mod runner;
pub mod store;

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex, Weak};
use std::time::Duration;

use axum::extract::{ConnectInfo, Path as UrlPath, Request, State};
use axum::http::{HeaderName, HeaderValue, StatusCode, header};
use axum::response::sse::{Event, KeepAlive, Sse};
use axum::response::{IntoResponse, Response};
use http_body_util::BodyExt;
use serde_json::{Value, json};
use tokio::sync::watch;

use more_enctrain::upload::{JobRequest, MEDIA_TYPE, decode_body, decode_header};

use crate::conn::ClientAddr;
use crate::{ApiError, AppState};
use store::{Files, Record, State as JobState};

/// The limits of training jobs.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct TrainingLimits {
    /// Largest upload (inputs, targets and canaries), bytes.
    pub max_upload_bytes: usize,
    /// Jobs one client (address) may have queued, training or waiting for download.
    pub max_jobs_per_client: usize,
    /// Jobs all clients together may have queued, training or waiting for download.
    pub max_jobs: usize,
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
            max_jobs_per_client: 2,
            max_jobs: 8,
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
    inner: Mutex<Inner>,
    changed: watch::Sender<usize>,
    cancelled: AtomicBool,
}

#[derive(Debug)]
struct Inner {
    record: Record,
    events: Vec<(&'static str, String)>,
    epochs_done: usize,
}

impl Job {
    fn new(files: Files, record: Record) -> Arc<Self> {
        Arc::new(Job {
            files,
            inner: Mutex::new(Inner { record, events: Vec::new(), epochs_done: 0 }),
            changed: watch::channel(0).0,
            cancelled: AtomicBool::new(false),
        })
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Inner> {
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
        let mut inner = self.lock();
        inner.events.push((kind, data.to_string()));
        let n = inner.events.len();
        drop(inner);
        self.changed.send_replace(n);
    }

    fn set_state(&self, state: JobState, error: Option<(String, String)>) {
        let mut inner = self.lock();
        inner.record.state = state;
        inner.record.error = error;
        if state == JobState::Running {
            inner.record.attempts += 1;
        }
        if let Err(e) = self.files.save(&inner.record) {
            tracing::warn!(job = %inner.record.id, error = %e, "cannot save a job's record");
        }
    }

    /// Training starts.
    pub fn start(&self) {
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

    /// Failed: the stream and the status say why.
    pub fn fail(&self, code: &str, message: String) {
        self.set_state(JobState::Failed, Some((code.to_string(), message.clone())));
        self.event("failed", json!({"error": code, "message": message}));
    }

    fn status(&self) -> Value {
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
    queue: Mutex<std::sync::mpsc::Sender<Arc<Job>>>,
    /// Uploads being read and checked at once (each holds its body in memory).
    uploads: Arc<tokio::sync::Semaphore>,
}

/// Uploads read and checked at once; one more is answered 503 `overloaded`.
pub const CONCURRENT_UPLOADS: usize = 2;

impl Jobs {
    /// Memory training may hold at most: [`CONCURRENT_UPLOADS`] uploads being read and checked (the body,
    /// its decoded planes and their coefficient form: three times the upload limit each) and the job
    /// training (its memory limit, plus its data read back from disk).
    pub fn memory_bound(&self) -> usize {
        let l = self.limits;
        (3 * CONCURRENT_UPLOADS + 1).saturating_mul(l.max_upload_bytes).saturating_add(l.max_memory_bytes)
    }

    /// Opens `dir` (created if missing), takes up the jobs found there and starts the training thread and
    /// the sweeper of expired jobs.
    pub fn open(dir: &Path, limits: TrainingLimits) -> std::io::Result<Arc<Jobs>> {
        std::fs::create_dir_all(dir)?;
        let (tx, rx) = std::sync::mpsc::channel();
        let jobs = Arc::new(Jobs {
            dir: dir.to_path_buf(),
            limits,
            map: Mutex::new(HashMap::new()),
            queue: Mutex::new(tx),
            uploads: Arc::new(tokio::sync::Semaphore::new(CONCURRENT_UPLOADS)),
        });
        let (threads, wall) = (limits.threads, limits.max_wall);
        std::thread::Builder::new().name("more-train".into()).spawn(move || runner::run(rx, threads, wall))?;
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

    fn map(&self) -> std::sync::MutexGuard<'_, HashMap<String, Arc<Job>>> {
        self.map.lock().unwrap_or_else(|e| e.into_inner())
    }

    fn enqueue(&self, job: Arc<Job>) {
        let sent = self.queue.lock().unwrap_or_else(|e| e.into_inner()).send(job.clone());
        if sent.is_err() {
            job.fail("internal", "the training thread has stopped".into());
        }
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
            let files = Files::new(&self.dir, &id);
            let record = match files.load() {
                Ok(r) if r.id == id => r,
                other => {
                    tracing::warn!(job = %id, error = ?other.err(), "unreadable job record: reported failed");
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
            self.enqueue(job);
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
            tracing::info!(job = %job.id(), "time to live over: deleted");
            remove(&job);
        }
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

fn jobs_of(s: &AppState) -> Result<&Arc<Jobs>, ApiError> {
    s.jobs().ok_or_else(|| {
        ApiError::new(
            StatusCode::NOT_FOUND,
            "training_disabled",
            "this server does not train (started with --no-training)",
        )
    })
}

fn job_of(s: &AppState, id: &str) -> Result<Arc<Job>, ApiError> {
    let jobs = jobs_of(s)?;
    jobs.map().get(id).cloned().ok_or_else(|| {
        ApiError::new(
            StatusCode::NOT_FOUND,
            "unknown_job",
            "no such job: it was never created, was deleted after its model was downloaded, was cancelled or expired",
        )
    })
}

/// `GET /api/v1/training`: whether the server trains, the networks offered and the limits.
pub async fn info(State(s): State<AppState>) -> impl IntoResponse {
    let Some(jobs) = s.jobs() else {
        return axum::Json(json!({"enabled": false, "networks": [], "limits": null}));
    };
    let l = jobs.limits;
    axum::Json(json!({
        "enabled": true,
        "media_type": MEDIA_TYPE,
        "networks": networks::offered(),
        "limits": {
            "max_upload_bytes": l.max_upload_bytes, "max_jobs_per_client": l.max_jobs_per_client,
            "max_jobs": l.max_jobs, "max_epochs": l.max_epochs, "max_batch_size": l.max_batch_size,
            "max_wall_seconds": l.max_wall.as_secs(), "ttl_seconds": l.ttl.as_secs(),
            "max_memory_bytes": l.max_memory_bytes, "threads": l.threads,
        },
    }))
}

fn invalid(message: impl Into<String>) -> ApiError {
    ApiError::unprocessable("invalid_job", message)
}

fn check_request(r: &JobRequest, l: &TrainingLimits) -> Result<networks::Network, ApiError> {
    let network = networks::find(&r.network).ok_or_else(|| {
        let ids: Vec<&str> = networks::offered().iter().map(|n| n.id).collect();
        invalid(format!(
            "unknown network {:?}; offered: {}",
            r.network.chars().take(64).collect::<String>(),
            ids.join(", ")
        ))
    })?;
    if r.epochs == 0 || r.epochs > l.max_epochs {
        return Err(ApiError::unprocessable(
            "too_many_epochs",
            format!("epochs must be between 1 and {} (asked {})", l.max_epochs, r.epochs),
        ));
    }
    if r.batch_size == 0 || r.batch_size > l.max_batch_size {
        return Err(invalid(format!("batch_size must be between 1 and {} (asked {})", l.max_batch_size, r.batch_size)));
    }
    if !(r.lr.is_finite() && r.lr > 0.0 && r.lr <= 1.0) {
        return Err(invalid(format!("lr must be in (0, 1] (asked {})", r.lr)));
    }
    if !(r.lr_decay.is_finite() && r.lr_decay > 0.0 && r.lr_decay <= 1.0) {
        return Err(invalid(format!("lr_decay must be in (0, 1] (asked {})", r.lr_decay)));
    }
    Ok(network)
}

/// `POST /api/v1/jobs`: checks and stores the upload, queues the job; 202 with its URLs.
pub async fn create(State(s): State<AppState>, req: Request) -> Result<Response, ApiError> {
    let jobs = jobs_of(&s)?.clone();
    let l = jobs.limits;
    let client = req
        .extensions()
        .get::<ConnectInfo<ClientAddr>>()
        .map_or_else(|| "unknown".to_string(), |c| c.0.0.ip().to_string());
    let headers = req.headers();
    let ct = headers.get(header::CONTENT_TYPE).map(|v| v.to_str().unwrap_or("<not text>"));
    if !ct.is_some_and(|c| c.split(';').next().unwrap_or("").trim().eq_ignore_ascii_case(MEDIA_TYPE)) {
        return Err(ApiError::new(
            StatusCode::UNSUPPORTED_MEDIA_TYPE,
            "unsupported_media_type",
            format!("expected Content-Type {MEDIA_TYPE}, got {}", ct.unwrap_or("none")),
        ));
    }
    let length = headers.get(header::CONTENT_LENGTH).and_then(|v| v.to_str().ok()?.parse::<u64>().ok());
    if let Some(len) = length
        && len > l.max_upload_bytes as u64
    {
        return Err(ApiError::too_large(len, l.max_upload_bytes));
    }
    {
        let map = jobs.map();
        let active: Vec<_> = map.values().filter(|j| j.lock().record.state.holds_resources()).collect();
        if active.len() >= l.max_jobs {
            return Err(ApiError::new(
                StatusCode::TOO_MANY_REQUESTS,
                "too_many_jobs",
                format!("the server holds {} training jobs, its limit; retry later", l.max_jobs),
            ));
        }
        if active.iter().filter(|j| j.lock().record.client == client).count() >= l.max_jobs_per_client {
            return Err(ApiError::new(
                StatusCode::TOO_MANY_REQUESTS,
                "too_many_client_jobs",
                format!(
                    "you have {} training jobs, the limit per client; download or delete one first",
                    l.max_jobs_per_client
                ),
            ));
        }
    }
    let Ok(_reading) = jobs.uploads.clone().try_acquire_owned() else {
        return Err(ApiError::unavailable("overloaded", "other training uploads are being read; retry shortly"));
    };
    let body = http_body_util::Limited::new(req.into_body(), l.max_upload_bytes)
        .collect()
        .await
        .map_err(|e| {
            if e.downcast_ref::<http_body_util::LengthLimitError>().is_some() {
                ApiError::too_large(l.max_upload_bytes as u64 + 1, l.max_upload_bytes)
            } else {
                ApiError::malformed(format!("reading the body: {e}"))
            }
        })?
        .to_bytes();
    let (request, _) = decode_header(&body).map_err(|e| ApiError::malformed(e.to_string()))?;
    let network = check_request(&request, &l)?;
    let memory = 2 * body.len() + request.batch_size * network.activation_bytes;
    if memory > l.max_memory_bytes {
        return Err(ApiError::new(
            StatusCode::PAYLOAD_TOO_LARGE,
            "memory_limit",
            format!(
                "training this job would take about {} MiB, above the server's {} MiB per job; send fewer rows or a smaller batch",
                memory >> 20,
                l.max_memory_bytes >> 20
            ),
        ));
    }
    let checked = {
        let body = body.clone();
        let (shape, outputs) = (network.input_shape.clone(), network.outputs);
        tokio::task::spawn_blocking(move || decode_body(&body, &shape, outputs).map(|u| u.data.len()))
            .await
            .map_err(|e| ApiError::internal("checking an upload", e))?
    };
    let rows = checked.map_err(|e| match e {
        more_enctrain::Error::Core(c @ more_core::Error::Malformed(_)) => ApiError::malformed(c.to_string()),
        other => ApiError::unprocessable("invalid_data", other.to_string()),
    })?;
    let id = format!("{:032x}", rand::random::<u128>());
    let record = Record {
        id: id.clone(),
        client,
        request,
        rows,
        upload_bytes: body.len(),
        memory_bytes: memory,
        created: store::now(),
        state: JobState::Queued,
        error: None,
        attempts: 0,
    };
    let files = Files::new(&jobs.dir, &id);
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
    let job = Job::new(files, record);
    job.event("queued", json!({"rows": rows}));
    jobs.map().insert(id.clone(), job.clone());
    jobs.enqueue(job.clone());
    tracing::info!(job = %id, rows, network = %network.id, "training job queued");
    let mut res = (StatusCode::ACCEPTED, axum::Json(job.status())).into_response();
    res.headers_mut().insert(
        header::LOCATION,
        HeaderValue::from_str(&format!("/api/v1/jobs/{id}")).map_err(|e| ApiError::internal("location", e))?,
    );
    Ok(res)
}

/// `GET /api/v1/jobs/{id}`: the job's state.
pub async fn status(State(s): State<AppState>, UrlPath(id): UrlPath<String>) -> Result<Response, ApiError> {
    Ok(axum::Json(job_of(&s, &id)?.status()).into_response())
}

/// `DELETE /api/v1/jobs/{id}`: cancels the job and deletes everything of it.
pub async fn delete(State(s): State<AppState>, UrlPath(id): UrlPath<String>) -> Result<Response, ApiError> {
    let job = job_of(&s, &id)?;
    jobs_of(&s)?.map().remove(&id);
    remove(&job);
    Ok(StatusCode::NO_CONTENT.into_response())
}

/// `GET /api/v1/jobs/{id}/model`: the encrypted model, once; the job is deleted after it is read.
pub async fn model(State(s): State<AppState>, UrlPath(id): UrlPath<String>) -> Result<Response, ApiError> {
    let job = job_of(&s, &id)?;
    let (state, error) = {
        let inner = job.lock();
        (inner.record.state, inner.record.error.clone())
    };
    match state {
        JobState::Done => {}
        JobState::Failed => {
            let (code, message) = error.unwrap_or_default();
            return Err(ApiError::new(
                StatusCode::CONFLICT,
                "job_failed",
                format!("the job failed ({code}): {message}"),
            ));
        }
        JobState::Queued | JobState::Running => {
            return Err(ApiError::new(
                StatusCode::CONFLICT,
                "not_ready",
                "the job is still training; follow its events until \"done\"",
            ));
        }
    }
    let path = job.files.model();
    let bytes = tokio::task::spawn_blocking(move || std::fs::read(path))
        .await
        .map_err(|e| ApiError::internal("reading a model", e))?
        .map_err(|e| ApiError::internal("reading a model", e))?;
    jobs_of(&s)?.map().remove(&id);
    remove(&job);
    let mut res = (StatusCode::OK, bytes).into_response();
    res.headers_mut().insert(header::CONTENT_TYPE, HeaderValue::from_static("application/x-more-encrypted-model"));
    Ok(res)
}

/// `GET /api/v1/jobs/{id}/events`: Server-Sent Events — every event so far, then the new ones, until the
/// job is done, failed or cancelled.
pub async fn events(State(s): State<AppState>, UrlPath(id): UrlPath<String>) -> Result<Response, ApiError> {
    let job = job_of(&s, &id)?;
    let rx = job.changed.subscribe();
    let stream = futures_util::stream::unfold((job, rx, 0usize, false), |(job, mut rx, next, over)| async move {
        if over {
            return None;
        }
        loop {
            let item = job.lock().events.get(next).cloned();
            if let Some((kind, data)) = item {
                let last = matches!(kind, "done" | "failed" | "cancelled");
                let event = Event::default().event(kind).id(next.to_string()).data(data);
                return Some((Ok::<_, std::convert::Infallible>(event), (job, rx, next + 1, last)));
            }
            if rx.changed().await.is_err() {
                return None;
            }
        }
    });
    let mut res = Sse::new(stream).keep_alive(KeepAlive::default()).into_response();
    res.headers_mut().insert(HeaderName::from_static("x-accel-buffering"), HeaderValue::from_static("no"));
    Ok(res)
}
