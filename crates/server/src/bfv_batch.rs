//! Batched BFV inference: up to 8,192 images in one set of ciphertexts (`more_bfv::batch`, one image per
//! slot), evaluated as a job because a batch takes tens of seconds.
//!
//! - `POST /api/v1/bfv/models/{id}/batches?key_id=…` (`application/octet-stream`: a batch message of
//!   `more_bfv::wire::encode_batch`, at most [`MAX_BATCH_BYTES`]; the key set must be a batch key from
//!   `POST /api/v1/bfv/keys`) → `202` with the batch's status (below) and `Location`.
//! - `GET /api/v1/bfv/batches/{batch_id}` → `{"batch_id", "model", "images", "state", "done", "total",
//!   "progress", "waited_s", "compute_s", "result_url", "error"}`; `state` is `queued`, `running`, `done`,
//!   `failed` or `stopped`, `done` of `total` hidden values are computed.
//! - `GET /api/v1/bfv/batches/{batch_id}/result` → the result message (`encode_batch_result`) once `done`;
//!   `409 batch_not_done` before, the batch's error if it failed.
//! - `DELETE /api/v1/bfv/batches/{batch_id}` → `204`: a queued batch is dropped, a running one stops within
//!   about one ciphertext product, a finished one's result is dropped.
//!
//! Limits ([`BfvLimits`]): at most `batches` accepted and unfinished at once (one runs, on its own pool of
//! `batch_threads` threads; the others wait in order) — beyond it `503 batch_queue_full`; at most
//! `batch_results` finished batches kept, each for `batch_result_ttl` — beyond it `503
//! batch_results_full`. Memory: every accepted batch holds its message until it runs; the running one holds
//! its decoded ciphertexts too. [`memory_bound`] is what the limits allow, and a budget of exactly that size
//! backs the reservations. Batches live in the replica that accepted them.

use std::collections::HashMap;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use axum::Router;
use axum::body::{Body, Bytes};
use axum::extract::{Query, State};
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use more_bfv::batch::BatchEvaluator;
use more_bfv::network::HIDDEN;
use more_bfv::wire::{Keys, MAX_BATCH_BYTES, MAX_CIPHERTEXT_BYTES};
use serde_json::json;
use tokio::sync::Semaphore;

use crate::bfv::{BfvService, MEDIA_TYPE, keys_for, wrong_keys};
use crate::bfv_limits::BfvLimits;
use crate::budget::{Budget, Reservation};
use crate::extract::ApiPath;
use crate::request::{BodyReader, BodyRules, Received};
use crate::{ApiError, AppState};

/// Memory a decoded batch takes per message byte (polynomials in NTT form, the seeded halves expanded).
pub const DECODED_PER_BYTE: usize = 3;

/// Memory one evaluation thread holds: ten three-polynomial accumulators (5.9 MiB), the convolution's sum
/// and one product before relinearisation, with room.
pub const WORK_PER_THREAD: usize = 12 << 20;

/// Largest result message kept (10 ciphertexts; about 1.8 MB in practice).
pub const MAX_RESULT_BYTES: usize = 10 * (MAX_CIPHERTEXT_BYTES + 4) + 32;

/// What the batch limits allow this process to hold: every accepted batch's message, the running one's
/// decoded ciphertexts and its threads' work, the kept results.
pub fn memory_bound(limits: &BfvLimits) -> usize {
    if limits.batches == 0 {
        return 0;
    }
    limits.batches * MAX_BATCH_BYTES
        + MAX_BATCH_BYTES * DECODED_PER_BYTE
        + limits.batch_threads * WORK_PER_THREAD
        + limits.batch_results * MAX_RESULT_BYTES
}

/// Where a batch is.
enum Phase {
    /// Accepted, waiting for the running place; holds its message.
    Queued(Bytes, Reservation),
    /// Being evaluated.
    Running,
    /// Finished: the result message.
    Done(Bytes),
    /// Failed: the error's code and message.
    Failed(ApiError),
    /// Stopped by a DELETE or by the server stopping.
    Stopped,
}

impl Phase {
    fn name(&self) -> &'static str {
        match self {
            Phase::Queued(..) => "queued",
            Phase::Running => "running",
            Phase::Done(_) => "done",
            Phase::Failed(_) => "failed",
            Phase::Stopped => "stopped",
        }
    }

    fn finished(&self) -> bool {
        matches!(self, Phase::Done(_) | Phase::Failed(_) | Phase::Stopped)
    }
}

/// One batch.
struct Batch {
    model: String,
    images: usize,
    accepted: Instant,
    started: Mutex<Option<Instant>>,
    finished: Mutex<Option<Instant>>,
    done: AtomicUsize,
    stop: AtomicBool,
    phase: Mutex<Phase>,
}

impl Batch {
    fn phase(&self) -> std::sync::MutexGuard<'_, Phase> {
        self.phase.lock().unwrap_or_else(|e| e.into_inner())
    }

    fn status(&self, id: &str) -> serde_json::Value {
        let phase = self.phase();
        let started = *self.started.lock().unwrap_or_else(|e| e.into_inner());
        let finished = *self.finished.lock().unwrap_or_else(|e| e.into_inner());
        let done = self.done.load(Ordering::Relaxed);
        let waited = started.unwrap_or_else(Instant::now).duration_since(self.accepted);
        let compute = started.map(|s| finished.unwrap_or_else(Instant::now).duration_since(s));
        let error = match &*phase {
            Phase::Failed(e) => json!({ "code": e.code, "message": e.message }),
            _ => serde_json::Value::Null,
        };
        json!({
            "batch_id": id,
            "model": self.model,
            "images": self.images,
            "state": phase.name(),
            "done": done,
            "total": HIDDEN,
            "progress": done as f64 / HIDDEN as f64,
            "waited_s": waited.as_secs_f64(),
            "compute_s": compute.map(|c| c.as_secs_f64()),
            "status_url": format!("/api/v1/bfv/batches/{id}"),
            "result_url": format!("/api/v1/bfv/batches/{id}/result"),
            "error": error,
        })
    }
}

/// The batches of one process.
pub struct Batches {
    map: Mutex<HashMap<String, Arc<Batch>>>,
    /// One batch runs at a time.
    running: Arc<Semaphore>,
    budget: Budget,
    pool: Option<Arc<rayon::ThreadPool>>,
}

impl std::fmt::Debug for Batches {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Batches").field("held", &self.lock().len()).finish_non_exhaustive()
    }
}

impl Batches {
    /// Batches under `limits` (none when `limits.batches` is 0).
    pub fn new(limits: &BfvLimits) -> Result<Batches, String> {
        let pool = if limits.batches == 0 {
            None
        } else {
            let pool = rayon::ThreadPoolBuilder::new()
                .num_threads(limits.batch_threads.max(1))
                .thread_name(|i| format!("bfv-batch-{i}"))
                .build()
                .map_err(|e| format!("the BFV batch threads: {e}"))?;
            Some(Arc::new(pool))
        };
        Ok(Batches {
            map: Mutex::new(HashMap::new()),
            running: Arc::new(Semaphore::new(1)),
            budget: Budget::new(memory_bound(limits)),
            pool,
        })
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, HashMap<String, Arc<Batch>>> {
        self.map.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Drops finished batches older than the results' time to live; returns (unfinished, finished) counts.
    fn sweep(&self, limits: &BfvLimits) -> (usize, usize) {
        let mut map = self.lock();
        map.retain(|_, b| {
            let finished = *b.finished.lock().unwrap_or_else(|e| e.into_inner());
            finished.is_none_or(|f| f.elapsed() < limits.batch_result_ttl)
        });
        let finished = map.values().filter(|b| b.phase().finished()).count();
        (map.len() - finished, finished)
    }

    /// Asks every running batch to stop (the server is stopping).
    pub fn stop_all(&self) {
        for b in self.lock().values() {
            b.stop.store(true, Ordering::Relaxed);
        }
    }
}

/// The batch routes (merged into the API router).
pub fn routes() -> Router<AppState> {
    Router::new()
        .route("/api/v1/bfv/models/{id}/batches", post(submit))
        .route("/api/v1/bfv/batches/{batch_id}", get(status).delete(remove))
        .route("/api/v1/bfv/batches/{batch_id}/result", get(result))
}

fn service(s: &AppState) -> Result<Arc<BfvService>, ApiError> {
    s.inner.bfv.clone().ok_or_else(|| ApiError::not_found("this server has no BFV models"))
}

fn unknown_batch() -> ApiError {
    ApiError::new(StatusCode::NOT_FOUND, "unknown_batch", "no such batch (finished and expired, or deleted?)")
}

fn new_batch_id() -> Result<String, ApiError> {
    let mut raw = [0u8; 16];
    getrandom::fill(&mut raw).map_err(|e| ApiError::internal("drawing a batch id", e))?;
    Ok(format!("batch-{}", raw.iter().map(|b| format!("{b:02x}")).collect::<String>()))
}

async fn submit(
    State(s): State<AppState>,
    ApiPath(id): ApiPath<String>,
    Query(query): Query<HashMap<String, String>>,
    headers: HeaderMap,
    body: Body,
) -> Result<Response, ApiError> {
    let svc = service(&s)?;
    let limits = *svc.limits();
    let Some(pool) = svc.batches().pool.clone() else {
        return Err(ApiError::not_found("batched BFV inference is off on this server (--bfv-batches 0)"));
    };
    let ev = svc.batch_evaluator(&id).ok_or_else(|| ApiError::unknown_model(&id))?;
    let Some(key_id) = query.get("key_id").cloned() else {
        return Err(ApiError::new(
            StatusCode::BAD_REQUEST,
            "missing_key_id",
            "add ?key_id= (a batch key from POST /api/v1/bfv/keys)",
        ));
    };
    let batches = svc.batches();
    let (unfinished, finished) = batches.sweep(&limits);
    if unfinished >= limits.batches {
        return Err(ApiError::unavailable(
            "batch_queue_full",
            format!(
                "{unfinished} batch(es) accepted and not finished (at most {}); retry when one ends",
                limits.batches
            ),
        ));
    }
    if finished >= limits.batch_results {
        return Err(ApiError::unavailable(
            "batch_results_full",
            format!("{finished} finished batches wait to be fetched (at most {}); retry later", limits.batch_results),
        ));
    }
    let keys = keys_for(&s, &svc, &key_id).await?;
    if !matches!(&*keys, Keys::Batch(_)) {
        return Err(wrong_keys(&keys, "a batch", "more_bfv::Client::batch_keys"));
    }
    let deadline = s.limits().request_timeout + Duration::from_secs((MAX_BATCH_BYTES >> 20) as u64);
    let rules = BodyRules { media_type: MEDIA_TYPE, limit: MAX_BATCH_BYTES, per_byte: 1, deadline };
    let Received { bytes, reservation } = BodyReader::new(&headers, body, rules, &batches.budget)?.read_all().await?;
    // The header alone, before the batch waits: a message that is not a batch is refused now.
    let images = more_bfv::wire::batch_images(&bytes)?;
    let batch_id = new_batch_id()?;
    let batch = Arc::new(Batch {
        model: id.clone(),
        images,
        accepted: Instant::now(),
        started: Mutex::new(None),
        finished: Mutex::new(None),
        done: AtomicUsize::new(0),
        stop: AtomicBool::new(false),
        phase: Mutex::new(Phase::Queued(bytes, reservation)),
    });
    {
        // Checked again under the lock: two submissions may have passed the first check together.
        let mut map = batches.lock();
        let unfinished = map.values().filter(|b| !b.phase().finished()).count();
        if unfinished >= limits.batches {
            return Err(ApiError::unavailable("batch_queue_full", "the batch queue filled meanwhile; retry shortly"));
        }
        map.insert(batch_id.clone(), batch.clone());
    }
    tracing::info!(model = %id, images, "bfv batch accepted");
    let status = batch.status(&batch_id);
    tokio::spawn(run(s.clone(), svc.clone(), pool, ev, keys, key_id, batch));
    let mut res = (StatusCode::ACCEPTED, axum::Json(status.clone())).into_response();
    let location = status["status_url"].as_str().unwrap_or_default().to_string();
    if let Ok(v) = HeaderValue::from_str(&location) {
        res.headers_mut().insert(header::LOCATION, v);
    }
    Ok(res)
}

/// Waits for the running place, then evaluates the batch on the batch pool.
async fn run(
    s: AppState,
    svc: Arc<BfvService>,
    pool: Arc<rayon::ThreadPool>,
    ev: Arc<BatchEvaluator>,
    keys: Arc<Keys>,
    key_id: String,
    batch: Arc<Batch>,
) {
    let stopping = s.stopped();
    let permit = tokio::select! {
        p = svc.batches().running.clone().acquire_owned() => p,
        () = stopping => {
            *batch.phase() = Phase::Stopped;
            *batch.finished.lock().unwrap_or_else(|e| e.into_inner()) = Some(Instant::now());
            return;
        }
    };
    let Ok(permit) = permit else { return };
    let (bytes, mut reservation) = match std::mem::replace(&mut *batch.phase(), Phase::Running) {
        Phase::Queued(bytes, reservation) => (bytes, reservation),
        // Deleted while it waited.
        other => {
            *batch.phase() = other;
            return;
        }
    };
    *batch.started.lock().unwrap_or_else(|e| e.into_inner()) = Some(Instant::now());
    // The decoded ciphertexts and the threads' work: the budget keeps room for one running batch.
    let work = bytes.len() * DECODED_PER_BYTE + pool.current_num_threads() * WORK_PER_THREAD;
    let grown = svc.batches().budget.grow(&mut reservation, work);
    let watcher = {
        let (batch, stopped) = (batch.clone(), s.stopped());
        tokio::spawn(async move {
            stopped.await;
            batch.stop.store(true, Ordering::Relaxed);
        })
    };
    let worker = batch.clone();
    let outcome = tokio::task::spawn_blocking(move || {
        let _held = (permit, reservation);
        if !grown {
            return Err(ApiError::unavailable("overloaded", "no memory left for the batch's evaluation; retry"));
        }
        let Keys::Batch(keys) = &*keys else { return Err(ApiError::internal("a batch", "keys of the wrong kind")) };
        let (images, cts) = more_bfv::wire::decode_batch(&bytes)?;
        drop(bytes);
        let progress = |done: usize, _total: usize| {
            worker.done.fetch_max(done, Ordering::Relaxed);
        };
        let out = pool.install(|| ev.evaluate_until(keys, &cts, &progress, &worker.stop))?;
        drop(cts);
        Ok(Bytes::from(more_bfv::wire::encode_batch_result(&out, images)))
    })
    .await
    .unwrap_or_else(|_| Err(ApiError::internal("the BFV batch worker", "it panicked or was cancelled")));
    watcher.abort();
    let compute = batch.started.lock().unwrap_or_else(|e| e.into_inner()).map(|t| t.elapsed());
    let next = match outcome {
        Ok(result) => {
            if let Err(e) = svc.keys().touch(svc.limits(), &key_id).await {
                tracing::warn!(error = %e, "bfv batch done but the key's time to live not restarted");
            }
            tracing::info!(model = %batch.model, images = batch.images, compute_ms = compute.map_or(0, |c| c.as_millis() as u64), "bfv batch done");
            Phase::Done(result)
        }
        Err(e) if e.code == "stopped" => Phase::Stopped,
        Err(e) => {
            tracing::warn!(error = %e, "bfv batch failed");
            Phase::Failed(e)
        }
    };
    let mut phase = batch.phase();
    // A DELETE while it ran already removed the batch; its phase no longer matters.
    *phase = next;
    *batch.finished.lock().unwrap_or_else(|e| e.into_inner()) = Some(Instant::now());
}

fn find(s: &AppState, batch_id: &str) -> Result<(Arc<BfvService>, Arc<Batch>), ApiError> {
    let svc = service(s)?;
    svc.batches().sweep(svc.limits());
    let batch = svc.batches().lock().get(batch_id).cloned().ok_or_else(unknown_batch)?;
    Ok((svc, batch))
}

async fn status(State(s): State<AppState>, ApiPath(batch_id): ApiPath<String>) -> Result<Response, ApiError> {
    let (_, batch) = find(&s, &batch_id)?;
    Ok(axum::Json(batch.status(&batch_id)).into_response())
}

async fn result(State(s): State<AppState>, ApiPath(batch_id): ApiPath<String>) -> Result<Response, ApiError> {
    let (_, batch) = find(&s, &batch_id)?;
    let phase = batch.phase();
    match &*phase {
        Phase::Done(bytes) => {
            let mut res = (StatusCode::OK, bytes.clone()).into_response();
            res.headers_mut().insert(header::CONTENT_TYPE, HeaderValue::from_static(MEDIA_TYPE));
            Ok(res)
        }
        Phase::Failed(e) => Err(e.clone()),
        Phase::Stopped => Err(ApiError::new(
            StatusCode::CONFLICT,
            "batch_stopped",
            "the batch was stopped before its end: submit it again",
        )),
        other => Err(ApiError::new(
            StatusCode::CONFLICT,
            "batch_not_done",
            format!(
                "the batch is {} ({} of {HIDDEN} hidden values): poll its status until it is done",
                other.name(),
                batch.done.load(Ordering::Relaxed)
            ),
        )),
    }
}

async fn remove(State(s): State<AppState>, ApiPath(batch_id): ApiPath<String>) -> Result<Response, ApiError> {
    let svc = service(&s)?;
    let batch = svc.batches().lock().remove(&batch_id).ok_or_else(unknown_batch)?;
    batch.stop.store(true, Ordering::Relaxed);
    let mut phase = batch.phase();
    if matches!(&*phase, Phase::Queued(..)) {
        // Frees its message now.
        *phase = Phase::Stopped;
    }
    Ok(StatusCode::NO_CONTENT.into_response())
}
