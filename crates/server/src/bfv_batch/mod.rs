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
//! backs the reservations. A batch runs in the replica that accepted it; with `--state redis://…` its status
//! record and result are mirrored in Redis ([`crate::state_store::batches`]), so any replica answers its
//! status, result and DELETE.

pub(crate) mod store;

use std::collections::HashMap;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use axum::Router;
use axum::body::{Body, Bytes};
use axum::extract::{Query, State};
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use more_bfv::batch::BatchEvaluator;
use more_bfv::network::HIDDEN;
use more_bfv::wire::{Keys, MAX_BATCH_BYTES};
use serde_json::json;

use store::{Batch, Phase};
pub use store::{Batches, DECODED_PER_BYTE, MAX_RESULT_BYTES, WORK_PER_THREAD, memory_bound};

use crate::bfv::{BfvService, MEDIA_TYPE, keys_for, wrong_keys};
use crate::bfv_limits::BfvLimits;
use crate::extract::ApiPath;
use crate::request::{BodyReader, BodyRules, Received};
use crate::state_store::batches::{self, Record, now_ms};
use crate::{ApiError, AppState};

/// The status answer of a batch's record.
fn status_json(id: &str, r: &Record) -> serde_json::Value {
    let now = now_ms();
    let secs = |from: u64, to: u64| to.saturating_sub(from) as f64 / 1e3;
    json!({
        "batch_id": id,
        "model": r.model,
        "images": r.images,
        "state": r.state,
        "done": r.done,
        "total": HIDDEN,
        "progress": r.done as f64 / HIDDEN as f64,
        "waited_s": secs(r.accepted_ms, r.started_ms.unwrap_or(now)),
        "compute_s": r.started_ms.map(|s| secs(s, r.finished_ms.unwrap_or(now))),
        "status_url": format!("/api/v1/bfv/batches/{id}"),
        "result_url": format!("/api/v1/bfv/batches/{id}/result"),
        "error": r.error.as_ref().map(|(_, code, message)| json!({ "code": code, "message": message })),
    })
}

/// A failure read back from a record (written by another replica): the same status, code and message.
fn error_of(status: u16, code: &str, message: &str) -> ApiError {
    // Codes are `&'static str`: the ones a batch can fail with, else a generic one.
    const CODES: [&str; 7] =
        ["invalid_bfv", "wrong_parameters", "bfv_evaluation_failed", "overloaded", "internal", "batch_lost", "stopped"];
    let code = CODES.into_iter().find(|c| *c == code).unwrap_or("batch_failed");
    ApiError::new(StatusCode::from_u16(status).unwrap_or(StatusCode::UNPROCESSABLE_ENTITY), code, message)
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
    crate::capability::random_id("batch-", "a batch id")
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
    let finished = batches.sweep(&limits);
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
    let Ok(place) = batches.places.clone().try_acquire_owned() else {
        return Err(ApiError::unavailable(
            "batch_queue_full",
            format!("{} batch(es) accepted and not finished; retry when one ends", limits.batches),
        ));
    };
    let deadline = s.limits().request_timeout + Duration::from_secs((MAX_BATCH_BYTES >> 20) as u64);
    let rules = BodyRules { media_type: MEDIA_TYPE, limit: MAX_BATCH_BYTES, per_byte: 1, deadline };
    let Received { bytes, reservation } = BodyReader::new(&headers, body, rules, &batches.budget)?.read_all().await?;
    // The header alone, before the batch waits: a message that is not a batch is refused now.
    let images = more_bfv::wire::batch_images(&bytes)?;
    let batch_id = new_batch_id()?;
    let batch = Arc::new(Batch {
        model: id.clone(),
        images,
        accepted_ms: now_ms(),
        started_ms: Mutex::new(None),
        finished_ms: Mutex::new(None),
        done: AtomicUsize::new(0),
        stop: AtomicBool::new(false),
        phase: Mutex::new(Phase::Queued(bytes, reservation)),
    });
    batches.lock().insert(batch_id.clone(), batch.clone());
    tracing::info!(model = %id, images, "bfv batch accepted");
    let record = batch.record();
    if let Some(redis) = s.shared_state() {
        if let Err(e) = batches::put(redis, &batch_id, &record, limits.batch_result_ttl).await {
            batches.lock().remove(&batch_id);
            return Err(e);
        }
    }
    let status = status_json(&batch_id, &record);
    tokio::spawn(run(s.clone(), svc.clone(), pool, ev, keys, key_id, batch_id.clone(), batch, place));
    let mut res = (StatusCode::ACCEPTED, axum::Json(status.clone())).into_response();
    let location = status["status_url"].as_str().unwrap_or_default().to_string();
    if let Ok(v) = HeaderValue::from_str(&location) {
        res.headers_mut().insert(header::LOCATION, v);
    }
    Ok(res)
}

/// Mirrors the batch's record into the shared state, if there is one (a failure is logged: the batch
/// itself goes on in this replica).
async fn mirror(s: &AppState, id: &str, batch: &Batch, limits: &BfvLimits, result: Option<&[u8]>) {
    let Some(redis) = s.shared_state() else { return };
    let record = batch.record();
    let written = match result {
        Some(bytes) => batches::put_result(redis, id, &record, bytes, limits.batch_result_ttl).await,
        None => batches::put(redis, id, &record, limits.batch_result_ttl).await,
    };
    if let Err(e) = written {
        tracing::warn!(error = %e, "bfv batch record not written to the shared state");
    }
}

/// Waits for the running place, then evaluates the batch on the batch pool.
#[allow(clippy::too_many_arguments)]
async fn run(
    s: AppState,
    svc: Arc<BfvService>,
    pool: Arc<rayon::ThreadPool>,
    ev: Arc<BatchEvaluator>,
    keys: Arc<Keys>,
    key_id: String,
    batch_id: String,
    batch: Arc<Batch>,
    place: tokio::sync::OwnedSemaphorePermit,
) {
    // The batch's place is given back when this returns, whichever way: the evaluation has ended.
    let _place = place;
    let limits = *svc.limits();
    let stopping = s.stopped();
    let permit = tokio::select! {
        p = svc.batches().running.clone().acquire_owned() => p,
        () = stopping => {
            *batch.phase() = Phase::Stopped;
            Batch::set_time(&batch.finished_ms);
            mirror(&s, &batch_id, &batch, &limits, None).await;
            return;
        }
    };
    let Ok(permit) = permit else { return };
    // Its own statement: the phase's lock is released before the arms below take it again.
    let waiting = std::mem::replace(&mut *batch.phase(), Phase::Running);
    let (bytes, mut reservation) = match waiting {
        // Deleted through another replica while it waited.
        Phase::Queued(..) if batch.stop.load(Ordering::Relaxed) => {
            *batch.phase() = Phase::Stopped;
            return;
        }
        Phase::Queued(bytes, reservation) => (bytes, reservation),
        // Deleted while it waited.
        other => {
            *batch.phase() = other;
            return;
        }
    };
    Batch::set_time(&batch.started_ms);
    // The decoded ciphertexts and the threads' work: the budget keeps room for one running batch.
    let work = bytes.len() * DECODED_PER_BYTE + pool.current_num_threads() * WORK_PER_THREAD;
    let grown = svc.batches().budget.grow(&mut reservation, work);
    // While it runs: stop when the server stops; with shared state, publish the progress and look for a
    // DELETE made through another replica, every second.
    let watcher = {
        let (s, svc, batch, batch_id) = (s.clone(), svc.clone(), batch.clone(), batch_id.clone());
        tokio::spawn(async move {
            let stopped = s.stopped();
            tokio::pin!(stopped);
            loop {
                tokio::select! {
                    () = &mut stopped => {
                        batch.stop.store(true, Ordering::Relaxed);
                        return;
                    }
                    () = tokio::time::sleep(Duration::from_secs(1)) => {}
                }
                if let Some(redis) = s.shared_state() {
                    if batches::stop_requested(redis, &batch_id).await.unwrap_or(false) {
                        batch.stop.store(true, Ordering::Relaxed);
                        svc.batches().lock().remove(&batch_id);
                        return;
                    }
                    mirror(&s, &batch_id, &batch, &limits, None).await;
                }
            }
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
        let result = more_bfv::wire::encode_batch_result(&out, images);
        if result.len() > MAX_RESULT_BYTES {
            return Err(ApiError::internal("a batch result", format!("{} bytes, above the bound", result.len())));
        }
        Ok(Bytes::from(result))
    })
    .await
    .unwrap_or_else(|_| Err(ApiError::internal("the BFV batch worker", "it panicked or was cancelled")));
    watcher.abort();
    let result = match outcome {
        Ok(result) => {
            if let Err(e) = svc.keys().touch(&limits, &key_id).await {
                tracing::warn!(error = %e, "bfv batch done but the key's time to live not restarted");
            }
            tracing::info!(model = %batch.model, images = batch.images, "bfv batch done");
            *batch.phase() = Phase::Done(result.clone());
            Some(result)
        }
        Err(e) if e.code == "stopped" => {
            *batch.phase() = Phase::Stopped;
            None
        }
        Err(e) => {
            tracing::warn!(error = %e, "bfv batch failed");
            *batch.phase() = Phase::Failed(e);
            None
        }
    };
    Batch::set_time(&batch.finished_ms);
    // A batch deleted while it ran is gone from the shared state too: do not write it back.
    if svc.batches().lock().contains_key(&batch_id) {
        mirror(&s, &batch_id, &batch, &limits, result.as_deref()).await;
    }
}

/// Where a batch was found: this replica's table, or the shared state's record.
enum Found {
    Local(Arc<Batch>),
    Shared(Record),
}

async fn find(s: &AppState, batch_id: &str) -> Result<Found, ApiError> {
    let svc = service(s)?;
    svc.batches().sweep(svc.limits());
    let local = svc.batches().lock().get(batch_id).cloned();
    if let Some(batch) = local {
        // With shared state, a DELETE through another replica removed the record: the batch is gone here too.
        if let Some(redis) = s.shared_state() {
            if !batches::exists(redis, batch_id).await? {
                batch.stop.store(true, Ordering::Relaxed);
                svc.batches().lock().remove(batch_id);
                return Err(unknown_batch());
            }
        }
        return Ok(Found::Local(batch));
    }
    match s.shared_state() {
        Some(redis) => batches::get(redis, batch_id).await?.map(Found::Shared).ok_or_else(unknown_batch),
        None => Err(unknown_batch()),
    }
}

async fn status(State(s): State<AppState>, ApiPath(batch_id): ApiPath<String>) -> Result<Response, ApiError> {
    let record = match find(&s, &batch_id).await? {
        Found::Local(batch) => batch.record(),
        Found::Shared(record) => record,
    };
    Ok(axum::Json(status_json(&batch_id, &record)).into_response())
}

fn not_done(record: &Record) -> ApiError {
    match (record.state.as_str(), &record.error) {
        ("failed", Some((status, code, message))) => error_of(*status, code, message),
        ("stopped", _) => ApiError::new(
            StatusCode::CONFLICT,
            "batch_stopped",
            "the batch was stopped before its end: submit it again",
        ),
        (state, _) => ApiError::new(
            StatusCode::CONFLICT,
            "batch_not_done",
            format!(
                "the batch is {state} ({} of {HIDDEN} hidden values): poll its status until it is done",
                record.done
            ),
        ),
    }
}

fn octets(bytes: Bytes) -> Response {
    let mut res = (StatusCode::OK, bytes).into_response();
    res.headers_mut().insert(header::CONTENT_TYPE, HeaderValue::from_static(MEDIA_TYPE));
    res
}

async fn result(State(s): State<AppState>, ApiPath(batch_id): ApiPath<String>) -> Result<Response, ApiError> {
    match find(&s, &batch_id).await? {
        Found::Local(batch) => {
            if let Phase::Done(bytes) = &*batch.phase() {
                return Ok(octets(bytes.clone()));
            }
            Err(not_done(&batch.record()))
        }
        Found::Shared(record) if record.state == "done" => {
            let redis = s.shared_state().ok_or_else(unknown_batch)?;
            let bytes = batches::result(redis, &batch_id).await?.ok_or_else(unknown_batch)?;
            Ok(octets(Bytes::from(bytes)))
        }
        Found::Shared(record) => Err(not_done(&record)),
    }
}

async fn remove(State(s): State<AppState>, ApiPath(batch_id): ApiPath<String>) -> Result<Response, ApiError> {
    let svc = service(&s)?;
    let local = svc.batches().lock().remove(&batch_id);
    if let Some(batch) = &local {
        batch.stop.store(true, Ordering::Relaxed);
        let mut phase = batch.phase();
        if matches!(&*phase, Phase::Queued(..)) {
            // Frees its message now.
            *phase = Phase::Stopped;
        }
    }
    let shared = match s.shared_state() {
        Some(redis) => batches::remove(redis, &batch_id).await?,
        None => false,
    };
    if local.is_some() || shared { Ok(StatusCode::NO_CONTENT.into_response()) } else { Err(unknown_batch()) }
}
