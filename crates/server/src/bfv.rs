//! BFV inference (`more-bfv`): the client uploads its public evaluation keys once and gets an id; then it
//! sends BFV ciphertexts with that id and gets BFV ciphertexts back. The server never holds a secret key and
//! cannot read inputs or answers.
//!
//! - `POST /api/v1/bfv/keys` (`application/octet-stream`, at most [`BfvLimits::max_key_bytes`]) → `201`
//!   `{"key_id", "expires_in_s", "bytes"}`. Keys live [`BfvLimits::key_ttl`] after their last use; all
//!   stored keys together stay within [`BfvLimits::key_memory`] (a full store answers `503`).
//! - `DELETE /api/v1/bfv/keys/{key_id}` → `204`.
//! - `POST /api/v1/bfv/models/{id}/infer?key_id=…` with a ciphertext message → the result message.
//!
//! Every body is read with a hard size cap; keys and ciphertexts are parsed and checked by `more_bfv::wire`
//! (magic, parameter fingerprint, lengths, levels) before any evaluation, on the blocking pool, at most
//! [`BfvLimits::workers`] at a time. Bad bytes are a 4xx JSON error.

use std::collections::HashMap;
use std::path::Path;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use axum::Router;
use axum::body::Body;
use axum::extract::{Path as UrlPath, Query, State};
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::{delete, post};
use more_bfv::layout::{INPUT_CIPHERTEXTS, OUTPUT_CIPHERTEXTS};
use more_bfv::params::{INPUT_LEVEL, OUTPUT_LEVEL};
use more_bfv::wire::{MAX_CIPHERTEXT_BYTES, MAX_KEYS_BYTES};
use more_bfv::{BfvError, BfvModel, EvalKeys, Evaluator};
use tokio::sync::Semaphore;

use crate::budget::Reservation;
use crate::{ApiError, AppState};

/// Media type of key and ciphertext messages.
pub const MEDIA_TYPE: &str = "application/octet-stream";

/// Limits of the BFV endpoints.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct BfvLimits {
    /// Largest key upload (bytes).
    pub max_key_bytes: usize,
    /// Keys are dropped this long after their last use.
    pub key_ttl: Duration,
    /// Memory all stored keys may take together, counted as [`KEY_MEMORY_PER_BYTE`] times their size.
    pub key_memory: usize,
    /// Key parses and evaluations running at once (each uses one blocking thread).
    pub workers: usize,
}

/// What one model is taken to keep resident where the resident set cannot be read (not Linux); 57 MB was
/// measured for `mnist-bfv-square` on Linux.
pub const UNMEASURED_MODEL_BYTES: usize = 64 << 20;

/// Bytes an inference request holds per body byte: the body and its ciphertexts decoded (polynomials in
/// NTT form take about three times their wire size).
pub const INFER_MEMORY_PER_BYTE: usize = 4;

/// Bytes one BFV evaluation holds besides its decoded inputs: the convolution's sum and rotations, the
/// square before relinearisation (three polynomials), the dense rounds' products and rotations and the
/// encoded answer — about 12 MiB at N = 8192 with five moduli, counted twice.
pub const EVALUATION_BYTES: usize = 24 << 20;

/// Bytes of memory a parsed key takes per uploaded byte (polynomials in NTT form, 8 bytes per coefficient
/// and modulus, and the seeded halves expanded).
pub const KEY_MEMORY_PER_BYTE: usize = 3;

impl Default for BfvLimits {
    fn default() -> Self {
        BfvLimits {
            max_key_bytes: MAX_KEYS_BYTES,
            key_ttl: Duration::from_secs(15 * 60),
            key_memory: 256 << 20,
            workers: 2,
        }
    }
}

struct StoredKeys {
    keys: Arc<EvalKeys>,
    bytes: usize,
    last_used: Instant,
}

/// The BFV models and the key store.
pub struct BfvService {
    models: Vec<(BfvModel, Arc<Evaluator>)>,
    resident: usize,
    keys: Mutex<HashMap<String, StoredKeys>>,
    limits: BfvLimits,
    workers: Arc<Semaphore>,
}

impl std::fmt::Debug for BfvService {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("BfvService").field("models", &self.models.len()).field("limits", &self.limits).finish()
    }
}

impl BfvService {
    /// Serves these models.
    pub fn new(models: Vec<BfvModel>, limits: BfvLimits) -> Result<BfvService, BfvError> {
        let before = crate::metrics::process_memory().map(|(rss, _)| rss);
        let count = models.len();
        let models = models
            .into_iter()
            .map(|m| {
                let ev = Evaluator::new(&m.network)?;
                Ok((m, Arc::new(ev)))
            })
            .collect::<Result<_, BfvError>>()?;
        // What the models keep resident (fhe.rs's parameter tables and the encoded weights), measured as the
        // growth of the resident set while they are built.
        let after = crate::metrics::process_memory().map(|(rss, _)| rss);
        let resident = match (before, after) {
            _ if count == 0 => 0,
            (Some(b), Some(a)) => a.saturating_sub(b),
            _ => UNMEASURED_MODEL_BYTES * count,
        };
        Ok(BfvService {
            models,
            resident,
            keys: Mutex::new(HashMap::new()),
            limits,
            workers: Arc::new(Semaphore::new(limits.workers.max(1))),
        })
    }

    /// Loads every `*.bfv.json` file of a directory.
    pub fn load_dir(dir: &Path, limits: BfvLimits) -> Result<BfvService, BfvError> {
        let mut models = Vec::new();
        let entries = std::fs::read_dir(dir).map_err(|e| BfvError::Model(format!("{}: {e}", dir.display())))?;
        let mut paths: Vec<_> = entries.filter_map(|e| e.ok().map(|e| e.path())).collect();
        paths.sort();
        for p in paths {
            if p.file_name().and_then(|n| n.to_str()).is_some_and(|n| n.ends_with(more_bfv::model::FILE_SUFFIX)) {
                models.push(BfvModel::load(&p)?);
            }
        }
        BfvService::new(models, limits)
    }

    /// Memory the service may hold outside the request budget: what its models keep resident and the key
    /// store's cap ([`BfvLimits::key_memory`]). Evaluations and uploads reserve from the request budget.
    pub fn memory_bound(&self) -> usize {
        if self.models.is_empty() { 0 } else { self.resident.saturating_add(self.limits.key_memory) }
    }

    /// The models served.
    pub fn models(&self) -> impl Iterator<Item = &BfvModel> {
        self.models.iter().map(|(m, _)| m)
    }

    /// Key sets stored now.
    pub fn stored_keys(&self) -> usize {
        self.keys.lock().expect("key store").len()
    }

    /// Drops expired keys; returns the memory the rest take.
    fn sweep(store: &mut HashMap<String, StoredKeys>, ttl: Duration) -> usize {
        store.retain(|_, k| k.last_used.elapsed() < ttl);
        store.values().map(|k| k.bytes * KEY_MEMORY_PER_BYTE).sum()
    }

    /// The `GET /api/v1/models` entries.
    pub fn model_entries(&self) -> Vec<serde_json::Value> {
        self.models()
            .map(|m| {
                serde_json::json!({
                    "id": m.id,
                    "task": m.task,
                    "scheme": "bfv",
                    "description": m.description,
                    "architecture": m.architecture,
                    "input_shape": [1, 28, 28],
                    "labels": m.labels,
                    "output_kind": "logits",
                    "ring_only": true,
                    "metrics": m.metrics,
                    "quantization": m.quantization,
                    "bfv": m.scheme,
                    "input_levels": m.network.input_levels,
                    "input_ciphertexts": INPUT_CIPHERTEXTS,
                    "output_ciphertexts": OUTPUT_CIPHERTEXTS,
                    "keys_url": "/api/v1/bfv/keys",
                    "infer_url": format!("/api/v1/bfv/models/{}/infer", m.id),
                    "max_key_bytes": self.limits.max_key_bytes,
                    "key_ttl_s": self.limits.key_ttl.as_secs(),
                    "media_type": MEDIA_TYPE,
                })
            })
            .collect()
    }
}

/// The BFV routes (merged into the API router by `crate::app`).
pub fn routes() -> Router<AppState> {
    Router::new()
        .route("/api/v1/bfv/keys", post(upload_keys))
        .route("/api/v1/bfv/keys/{key_id}", delete(delete_keys))
        .route("/api/v1/bfv/models/{id}/infer", post(infer))
}

fn service(s: &AppState) -> Result<&Arc<BfvService>, ApiError> {
    s.inner.bfv.as_ref().ok_or_else(|| ApiError::not_found("this server has no BFV models"))
}

fn bfv_error(e: BfvError) -> ApiError {
    match e {
        BfvError::Parameters(m) => ApiError::unprocessable("wrong_parameters", m),
        BfvError::Wire(m) | BfvError::Input(m) => ApiError::unprocessable("invalid_bfv", m),
        BfvError::Fhe(m) => ApiError::unprocessable("bfv_evaluation_failed", m),
        BfvError::Model(m) => ApiError::internal("the BFV model", m),
    }
}

fn octet_stream(headers: &HeaderMap) -> Result<(), ApiError> {
    let ct = headers.get(header::CONTENT_TYPE).map(|v| v.to_str().unwrap_or("<not text>"));
    match ct.map(|c| c.split(';').next().unwrap_or("").trim()) {
        Some(e) if e.eq_ignore_ascii_case(MEDIA_TYPE) => Ok(()),
        _ => Err(ApiError::unsupported_media_type(ct)),
    }
}

/// Reads a body of at most `limit` bytes (refused upfront when the announced length is larger).
/// Reads a body of at most `limit` bytes after reserving, from the server's memory budget,
/// `per_byte` times its announced size (or `limit`) plus `extra` bytes: the memory the request holds until
/// it is answered. Not enough budget is a 503 `overloaded`, as for MORE inference.
async fn read_body(
    s: &AppState,
    headers: &HeaderMap,
    body: Body,
    limit: usize,
    per_byte: usize,
    extra: usize,
) -> Result<(axum::body::Bytes, Reservation), ApiError> {
    let announced = headers.get(header::CONTENT_LENGTH).and_then(|v| v.to_str().ok()?.parse::<u64>().ok());
    if let Some(len) = announced
        && len > limit as u64
    {
        return Err(ApiError::too_large(len, limit));
    }
    let size = announced.map_or(limit, |l| l as usize);
    let reserve = size.saturating_mul(per_byte).saturating_add(extra);
    let Some(reservation) = s.budget().try_reserve(reserve) else {
        return Err(ApiError::unavailable("overloaded", "the server's memory budget is in use; retry shortly"));
    };
    let read = axum::body::to_bytes(body, limit);
    match tokio::time::timeout(s.inner.limits.request_timeout, read).await {
        Err(_) => Err(ApiError::new(StatusCode::REQUEST_TIMEOUT, "timeout", "the request body took too long")),
        Ok(Err(_)) => Err(ApiError::too_large(announced.unwrap_or(limit as u64 + 1), limit)),
        Ok(Ok(b)) => Ok((b, reservation)),
    }
}

/// Runs `f` on the blocking pool under the worker semaphore.
async fn on_worker<T: Send + 'static>(
    svc: &Arc<BfvService>,
    f: impl FnOnce() -> Result<T, BfvError> + Send + 'static,
) -> Result<T, ApiError> {
    let Ok(_permit) = svc.workers.clone().try_acquire_owned() else {
        return Err(ApiError::unavailable("overloaded", "all BFV workers are busy; retry shortly"));
    };
    tokio::task::spawn_blocking(f)
        .await
        .map_err(|_| ApiError::internal("the BFV worker", "it panicked or was cancelled"))?
        .map_err(bfv_error)
}

fn new_key_id() -> Result<String, ApiError> {
    let mut raw = [0u8; 16];
    getrandom::fill(&mut raw).map_err(|e| ApiError::internal("drawing a key id", e))?;
    Ok(raw.iter().map(|b| format!("{b:02x}")).collect())
}

async fn upload_keys(State(s): State<AppState>, headers: HeaderMap, body: Body) -> Result<Response, ApiError> {
    let svc = service(&s)?.clone();
    octet_stream(&headers)?;
    let limit = svc.limits.max_key_bytes;
    // The body and the parsed keys (until they join the key store, which has its own cap).
    let (body, _memory) = read_body(&s, &headers, body, limit, 1 + KEY_MEMORY_PER_BYTE, 0).await?;
    let bytes = body.len();
    // Reserve room before parsing, so a flood of uploads cannot hold more than the budget.
    {
        let mut store = svc.keys.lock().expect("key store");
        let used = BfvService::sweep(&mut store, svc.limits.key_ttl);
        if used + bytes * KEY_MEMORY_PER_BYTE > svc.limits.key_memory {
            return Err(ApiError::unavailable("key_store_full", "the key store is full; retry later"));
        }
    }
    let keys = on_worker(&svc, move || more_bfv::wire::decode_keys(&body)).await?;
    let id = new_key_id()?;
    {
        let mut store = svc.keys.lock().expect("key store");
        let used = BfvService::sweep(&mut store, svc.limits.key_ttl);
        if used + bytes * KEY_MEMORY_PER_BYTE > svc.limits.key_memory {
            return Err(ApiError::unavailable("key_store_full", "the key store is full; retry later"));
        }
        store.insert(id.clone(), StoredKeys { keys: Arc::new(keys), bytes, last_used: Instant::now() });
    }
    tracing::info!(bytes, "bfv keys stored");
    let reply = serde_json::json!({ "key_id": id, "expires_in_s": svc.limits.key_ttl.as_secs(), "bytes": bytes });
    Ok((StatusCode::CREATED, axum::Json(reply)).into_response())
}

async fn delete_keys(State(s): State<AppState>, UrlPath(key_id): UrlPath<String>) -> Result<Response, ApiError> {
    let svc = service(&s)?;
    match svc.keys.lock().expect("key store").remove(&key_id) {
        Some(_) => Ok(StatusCode::NO_CONTENT.into_response()),
        None => Err(ApiError::new(StatusCode::NOT_FOUND, "unknown_key", "no such key id (expired?)")),
    }
}

async fn infer(
    State(s): State<AppState>,
    UrlPath(id): UrlPath<String>,
    Query(query): Query<HashMap<String, String>>,
    headers: HeaderMap,
    body: Body,
) -> Result<Response, ApiError> {
    let svc = service(&s)?.clone();
    let (_, ev) = svc.models.iter().find(|(m, _)| m.id == id).ok_or_else(|| ApiError::unknown_model(&id))?.clone();
    let Some(key_id) = query.get("key_id") else {
        return Err(ApiError::new(
            StatusCode::BAD_REQUEST,
            "missing_key_id",
            "add ?key_id= (from POST /api/v1/bfv/keys)",
        ));
    };
    let keys = {
        let mut store = svc.keys.lock().expect("key store");
        BfvService::sweep(&mut store, svc.limits.key_ttl);
        let entry = store
            .get_mut(key_id)
            .ok_or_else(|| ApiError::new(StatusCode::NOT_FOUND, "unknown_key", "no such key id (expired?)"))?;
        entry.last_used = Instant::now();
        entry.keys.clone()
    };
    octet_stream(&headers)?;
    let limit = INPUT_CIPHERTEXTS * (MAX_CIPHERTEXT_BYTES + 4) + 64;
    let (body, _memory) = read_body(&s, &headers, body, limit, INFER_MEMORY_PER_BYTE, EVALUATION_BYTES).await?;
    let t0 = Instant::now();
    let out = on_worker(&svc, move || {
        let cts = more_bfv::wire::decode_ciphertexts(&body, INPUT_CIPHERTEXTS, INPUT_LEVEL)?;
        let out = ev.evaluate(&keys, &cts)?;
        Ok(more_bfv::wire::encode_ciphertexts(&out, OUTPUT_LEVEL))
    })
    .await?;
    let compute = t0.elapsed();
    tracing::info!(model = %id, compute_us = compute.as_micros() as u64, "bfv inferred");
    let mut res = (StatusCode::OK, out).into_response();
    let h = res.headers_mut();
    h.insert(header::CONTENT_TYPE, HeaderValue::from_static(MEDIA_TYPE));
    let timing = format!("compute;dur={:.3}", compute.as_secs_f64() * 1e3);
    h.insert("server-timing", HeaderValue::from_str(&timing).expect("ascii"));
    Ok(res)
}
