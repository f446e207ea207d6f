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
//! The keys live in this process or, with `--state redis://…`, in Redis shared by every replica
//! ([`KeyStore`]); the handlers are the same for both.
//!
//! Every body is read with a hard size cap; keys and ciphertexts are parsed and checked by `more_bfv::wire`
//! (magic, parameter fingerprint, lengths, levels) before any evaluation, on the blocking pool, at most
//! [`BfvLimits::workers`] at a time. Bad bytes are a 4xx JSON error.

use std::collections::HashMap;
use std::path::Path;
use std::sync::Arc;
use std::time::{Duration, Instant};

use axum::Router;
use axum::body::Body;
use axum::extract::{Query, State};
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::{delete, post};
use more_bfv::layout::{INPUT_CIPHERTEXTS, output_ciphertexts};
use more_bfv::model::BfvRegressionModel;
use more_bfv::params::{INPUT_LEVEL, OUTPUT_LEVEL};
use more_bfv::regression::RegressionEvaluator;
use more_bfv::wire::{Keys, MAX_CIPHERTEXT_BYTES};
use more_bfv::{BatchEvaluator, BfvError, BfvModel, Evaluator};
use tokio::sync::Semaphore;

// The limits are defined apart so that the key store can read them without importing this module;
// `more_server::bfv::BfvLimits` and the two constants remain public paths.
use crate::bfv_batch::store::Batches;
pub use crate::bfv_limits::{BfvLimits, CLIENT_SHARES, KEY_MEMORY_PER_BYTE};
use crate::budget::Reservation;
use crate::extract::{ApiPath, Client};
use crate::request::{BodyReader, BodyRules, Received};
use crate::state_store::Redis;
use crate::state_store::keys::{KeyStore, Lookup, unknown_key};
use crate::{ApiError, AppState};

/// Media type of key and ciphertext messages.
pub const MEDIA_TYPE: &str = "application/octet-stream";

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

/// The BFV models and the key store.
pub struct BfvService {
    models: Vec<(BfvModel, Arc<Evaluator>)>,
    /// Each model's batch packing (`crate::bfv_batch`).
    batch_evaluators: Vec<Arc<BatchEvaluator>>,
    /// Regression models (the WBC surrogate): one patient per slot, a batch key.
    regressions: Vec<(BfvRegressionModel, Arc<RegressionEvaluator>)>,
    batches: Batches,
    resident: usize,
    keys: KeyStore,
    limits: BfvLimits,
    workers: Arc<Semaphore>,
    /// BFV requests (key uploads and evaluations) admitted at once: [`ADMITTED_PER_WORKER`] per worker.
    /// Others wait for a place before their body is read, so a class's burst waits in line holding a
    /// connection, not the memory budget.
    admitted: Arc<Semaphore>,
}

/// BFV requests admitted per worker: one working, one read and waiting to work.
pub const ADMITTED_PER_WORKER: usize = 2;

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
        let models: Vec<_> = models
            .into_iter()
            .map(|m| {
                let ev = Evaluator::new(&m.network)?;
                Ok((m, Arc::new(ev)))
            })
            .collect::<Result<_, BfvError>>()?;
        let batch_evaluators = models
            .iter()
            .map(|(m, _)| BatchEvaluator::new(&m.network).map(Arc::new))
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
            batch_evaluators,
            regressions: Vec::new(),
            batches: Batches::new(&limits).map_err(BfvError::Model)?,
            resident,
            keys: KeyStore::default(),
            limits,
            workers: Arc::new(Semaphore::new(limits.workers.max(1))),
            admitted: Arc::new(Semaphore::new(limits.workers.max(1) * ADMITTED_PER_WORKER)),
        })
    }

    /// Also serves these regression models (their evaluators' encoded biases join the resident memory).
    pub fn with_regressions(mut self, models: Vec<BfvRegressionModel>) -> Result<BfvService, BfvError> {
        let before = crate::metrics::process_memory().map(|(rss, _)| rss);
        let count = models.len();
        for m in models {
            let ev = RegressionEvaluator::new(&m.network)?;
            self.regressions.push((m, Arc::new(ev)));
        }
        let after = crate::metrics::process_memory().map(|(rss, _)| rss);
        self.resident += match (before, after) {
            _ if count == 0 => 0,
            (Some(b), Some(a)) => a.saturating_sub(b),
            _ => UNMEASURED_MODEL_BYTES * count,
        };
        Ok(self)
    }

    /// Loads every `*.bfv.json` file of a directory: classifiers (`task: "mnist"`, `task: "angio"`) and
    /// regression models (the WBC surrogate, `task: "wbc"`).
    pub fn load_dir(dir: &Path, limits: BfvLimits) -> Result<BfvService, BfvError> {
        let mut models = Vec::new();
        let mut regressions = Vec::new();
        let entries = std::fs::read_dir(dir).map_err(|e| BfvError::Model(format!("{}: {e}", dir.display())))?;
        let mut paths: Vec<_> = entries.filter_map(|e| e.ok().map(|e| e.path())).collect();
        paths.sort();
        for p in paths {
            if p.file_name().and_then(|n| n.to_str()).is_some_and(|n| n.ends_with(more_bfv::model::FILE_SUFFIX)) {
                let task = more_bfv::model::peek_task_of(&p)?;
                if task == more_bfv::model::REGRESSION_TASK {
                    regressions.push(BfvRegressionModel::load(&p)?);
                } else {
                    models.push(BfvModel::load(&p)?);
                }
            }
        }
        BfvService::new(models, limits)?.with_regressions(regressions)
    }

    /// Keeps the keys in Redis ([`KeyStore::redis`]) instead of this process: every replica on the same
    /// Redis knows every key set; this one caches a few parses.
    pub fn with_shared_keys(mut self, redis: Redis) -> Self {
        self.use_shared_keys(redis);
        self
    }

    pub(crate) fn use_shared_keys(&mut self, redis: Redis) {
        self.keys = KeyStore::redis(redis, &self.limits);
    }

    /// Memory the service may hold outside the request budget: what its models keep resident and the key
    /// store's cap ([`BfvLimits::key_memory`]) — or, when the keys live in Redis, the cap of this replica's
    /// cache of parsed keys (four sets of at most [`BfvLimits::max_key_bytes`], at most the key store's
    /// cap; [`KeyStore::redis`]). Evaluations, uploads and parses of fetched keys reserve from the request
    /// budget.
    pub fn memory_bound(&self) -> usize {
        // Without models the store refuses keys, so it holds nothing.
        if self.models.is_empty() && self.regressions.is_empty() {
            0
        } else {
            self.resident
                .saturating_add(self.keys.memory_bound(&self.limits))
                .saturating_add(crate::bfv_batch::store::memory_bound(&self.limits))
        }
    }

    /// The limits.
    pub fn limits(&self) -> &BfvLimits {
        &self.limits
    }

    /// The key store.
    pub(crate) fn keys(&self) -> &KeyStore {
        &self.keys
    }

    /// The batches of this process.
    pub(crate) fn batches(&self) -> &Batches {
        &self.batches
    }

    /// The batch packing of model `id`.
    pub(crate) fn batch_evaluator(&self, id: &str) -> Option<Arc<BatchEvaluator>> {
        self.models.iter().position(|(m, _)| m.id == id).map(|i| self.batch_evaluators[i].clone())
    }

    /// The classifiers served.
    pub fn models(&self) -> impl Iterator<Item = &BfvModel> {
        self.models.iter().map(|(m, _)| m)
    }

    /// The regression models served.
    pub fn regressions(&self) -> impl Iterator<Item = &BfvRegressionModel> {
        self.regressions.iter().map(|(m, _)| m)
    }

    /// The `GET /api/v1/models` entries: for every model the fields all BFV models share
    /// (`BfvService::entry`), then the classifier's or the regression model's own.
    pub fn model_entries(&self) -> Vec<serde_json::Value> {
        let classifiers =
            self.models().map(|m| {
                let header =
                    Header { id: &m.id, task: &m.task, description: &m.description, architecture: &m.architecture };
                self.entry(header, &m.metrics, &m.quantization, &m.scheme, serde_json::json!({
                "input_shape": [1, more_bfv::network::IMAGE, more_bfv::network::IMAGE],
                "labels": m.labels,
                "output_kind": "logits",
                "input_levels": m.network.input_levels,
                "input_ciphertexts": INPUT_CIPHERTEXTS,
                "output_ciphertexts": output_ciphertexts(m.network.classes()),
                "keys_kind": "single-image",
                "batches_url": (self.limits.batches > 0).then(|| format!("/api/v1/bfv/models/{}/batches", m.id)),
                "batch_slots": more_bfv::batch::BATCH_SLOTS,
            }))
            });
        let regressions = self.regressions().map(|m| {
            let n = &m.network;
            let header =
                Header { id: &m.id, task: &m.task, description: &m.description, architecture: &m.architecture };
            self.entry(
                header,
                &m.metrics,
                &m.quantization,
                &m.scheme,
                serde_json::json!({
                    "input_names": m.input_names,
                    "labels": m.labels,
                    "units": m.units,
                    "output_kind": "regression",
                    // What a client needs to scale its inputs and read the outputs (not the weights).
                    "scaling": n.scaling,
                    "input_ciphertexts": n.inputs,
                    "input_level": more_bfv::batch::BATCH_INPUT_LEVEL,
                    "output_ciphertexts": n.result_ciphertexts(),
                    "output_level": more_bfv::batch::BATCH_OUTPUT_LEVEL,
                    "keys_kind": "batch",
                }),
            )
        });
        classifiers.chain(regressions).collect()
    }

    /// One model's entry: the fields every BFV model has, then `own` (an object) merged in.
    fn entry(
        &self,
        h: Header<'_>,
        metrics: &std::collections::BTreeMap<String, f64>,
        quantization: &std::collections::BTreeMap<String, String>,
        scheme: &more_bfv::params::SchemeInfo,
        own: serde_json::Value,
    ) -> serde_json::Value {
        let mut entry = serde_json::json!({
            "id": h.id,
            "task": h.task,
            "scheme": "bfv",
            "description": h.description,
            "architecture": h.architecture,
            "ring_only": true,
            "metrics": metrics,
            "quantization": quantization,
            "bfv": scheme,
            "keys_url": "/api/v1/bfv/keys",
            "infer_url": format!("/api/v1/bfv/models/{}/infer", h.id),
            "max_key_bytes": self.limits.max_key_bytes,
            "key_ttl_s": self.limits.key_ttl.as_secs(),
            "media_type": MEDIA_TYPE,
        });
        if let (Some(all), serde_json::Value::Object(own)) = (entry.as_object_mut(), own) {
            all.extend(own);
        }
        entry
    }
}

/// The header fields every BFV model file has, borrowed for its listing.
struct Header<'a> {
    id: &'a str,
    task: &'a str,
    description: &'a str,
    architecture: &'a str,
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

/// Runs `f` on the blocking pool under a worker permit, waiting up to the request timeout for one (a burst
/// of a class's key uploads queues instead of being refused; the waiting requests keep their memory
/// reservation, so the budget bounds them). The permit and `held` move into the task: they are released
/// when the work ends, not when the handler is dropped, so clients that disconnect cannot start more work
/// than the limits allow.
async fn on_worker<T: Send + 'static>(
    s: &AppState,
    svc: &Arc<BfvService>,
    held: Reservation,
    f: impl FnOnce() -> Result<T, BfvError> + Send + 'static,
) -> Result<T, ApiError> {
    let busy = || ApiError::unavailable("overloaded", "all BFV workers stayed busy; retry shortly");
    let permit = tokio::time::timeout(s.limits().request_timeout, svc.workers.clone().acquire_owned())
        .await
        .map_err(|_| busy())?
        .map_err(|_| busy())?;
    tokio::task::spawn_blocking(move || {
        let _owned = (permit, held);
        f()
    })
    .await
    .map_err(|_| ApiError::internal("the BFV worker", "it panicked or was cancelled"))?
    .map_err(ApiError::from)
}

/// The rules of a BFV body: keys or ciphertexts as `application/octet-stream`, read within the request
/// timeout plus one second per MiB of the limit (key sets are megabytes).
fn rules(s: &AppState, limit: usize, per_byte: usize) -> BodyRules {
    let deadline = s.limits().request_timeout + Duration::from_secs((limit >> 20) as u64);
    BodyRules { media_type: MEDIA_TYPE, limit, per_byte, deadline }
}

/// Waits (up to the body's deadline) for a place among the BFV requests admitted at once.
async fn admit(svc: &Arc<BfvService>, rules: &BodyRules) -> Result<tokio::sync::OwnedSemaphorePermit, ApiError> {
    let busy = || ApiError::unavailable("overloaded", "the BFV workers stayed busy; retry shortly");
    tokio::time::timeout(rules.deadline, svc.admitted.clone().acquire_owned())
        .await
        .map_err(|_| busy())?
        .map_err(|_| busy())
}

fn new_key_id() -> Result<String, ApiError> {
    crate::capability::random_id("", "a key id")
}

async fn upload_keys(
    State(s): State<AppState>,
    Client(client): Client,
    headers: HeaderMap,
    body: Body,
) -> Result<Response, ApiError> {
    let svc = service(&s)?.clone();
    if svc.models.is_empty() {
        return Err(ApiError::not_found("this server has no BFV models: it keeps no BFV keys"));
    }
    // The body and the parsed keys (until they join the key store, which has its own cap).
    let rules = rules(&s, svc.limits.max_key_bytes, 1 + KEY_MEMORY_PER_BYTE);
    let _admitted = admit(&svc, &rules).await?;
    let Received { bytes: body, reservation } = BodyReader::new(&headers, body, rules, s.budget())?.read_all().await?;
    let bytes = body.len();
    // Check for room before parsing (a dry run of the store), so a full store costs no parse.
    svc.keys.check_room(&svc.limits, &client, bytes).await?;
    // The message comes back with its parse: a shared store keeps the bytes.
    let (keys, body) =
        on_worker(&s, &svc, reservation, move || more_bfv::wire::decode_any_keys(&body).map(|k| (k, body))).await?;
    let id = new_key_id()?;
    let kind = keys.kind();
    svc.keys.insert(&svc.limits, &client, &id, keys, &body).await?;
    drop(body);
    tracing::info!(bytes, "bfv keys stored");
    let reply = serde_json::json!({
        "key_id": id,
        "expires_in_s": svc.limits.key_ttl.as_secs(),
        "bytes": bytes,
        "kind": kind,
    });
    Ok((StatusCode::CREATED, axum::Json(reply)).into_response())
}

async fn delete_keys(State(s): State<AppState>, ApiPath(key_id): ApiPath<String>) -> Result<Response, ApiError> {
    let svc = service(&s)?;
    if svc.keys.remove(&key_id).await? { Ok(StatusCode::NO_CONTENT.into_response()) } else { Err(unknown_key()) }
}

async fn infer(
    State(s): State<AppState>,
    ApiPath(id): ApiPath<String>,
    Query(query): Query<HashMap<String, String>>,
    headers: HeaderMap,
    body: Body,
) -> Result<Response, ApiError> {
    let svc = service(&s)?.clone();
    let classifier = svc.models.iter().find(|(m, _)| m.id == id).map(|(_, ev)| ev.clone());
    let regression = svc.regressions.iter().find(|(m, _)| m.id == id).map(|(_, ev)| ev.clone());
    if classifier.is_none() && regression.is_none() {
        return Err(ApiError::unknown_model(&id));
    }
    let Some(key_id) = query.get("key_id").cloned() else {
        return Err(ApiError::new(
            StatusCode::BAD_REQUEST,
            "missing_key_id",
            "add ?key_id= (from POST /api/v1/bfv/keys)",
        ));
    };
    let limit = INPUT_CIPHERTEXTS * (MAX_CIPHERTEXT_BYTES + 4) + 64;
    let rules = rules(&s, limit, INFER_MEMORY_PER_BYTE);
    let _admitted = admit(&svc, &rules).await?;
    let keys = keys_for(&s, &svc, &key_id).await?;
    match (&*keys, regression.is_some()) {
        (Keys::Single(_), false) | (Keys::Batch(_), true) => {}
        (other, false) => return Err(wrong_keys(other, "single-image inference", "more_bfv::Client::eval_keys")),
        (other, true) => return Err(wrong_keys(other, "a regression model", "more_bfv::Client::batch_keys")),
    }
    let mut reader = BodyReader::new(&headers, body, rules, s.budget())?;
    let body = reader.read_rest().await?;
    reader.reserve(body.len() * INFER_MEMORY_PER_BYTE + EVALUATION_BYTES)?;
    let t0 = Instant::now();
    let out = on_worker(&s, &svc, reader.into_reservation(), move || match (&*keys, classifier, regression) {
        (Keys::Single(keys), Some(ev), _) => {
            let cts = more_bfv::wire::decode_ciphertexts(&body, INPUT_CIPHERTEXTS, INPUT_LEVEL)?;
            Ok(more_bfv::wire::encode_ciphertexts(&ev.evaluate(keys, &cts)?, OUTPUT_LEVEL))
        }
        (Keys::Batch(keys), _, Some(ev)) => {
            // One patient per slot: the inputs' ciphertexts at the batch level, the limbs at the output level.
            let (level, out_level) = (more_bfv::batch::BATCH_INPUT_LEVEL, more_bfv::batch::BATCH_OUTPUT_LEVEL);
            let cts = more_bfv::wire::decode_ciphertexts(&body, ev.net().inputs, level)?;
            Ok(more_bfv::wire::encode_ciphertexts(&ev.evaluate(keys, &cts)?, out_level))
        }
        _ => Err(BfvError::Input("keys of the wrong kind".into())),
    })
    .await?;
    // A key's time to live restarts only with a successful use: bad bodies do not keep keys alive.
    if let Err(e) = svc.keys.touch(&svc.limits, &key_id).await {
        // The answer is computed: the client gets it; only the key's time to live was not restarted.
        tracing::warn!(error = %e, "bfv keys used but their time to live not restarted");
    }
    let compute = t0.elapsed();
    tracing::info!(model = %id, compute_us = compute.as_micros() as u64, "bfv inferred");
    let mut res = (StatusCode::OK, out).into_response();
    let h = res.headers_mut();
    h.insert(header::CONTENT_TYPE, HeaderValue::from_static(MEDIA_TYPE));
    let timing = format!("compute;dur={:.3}", compute.as_secs_f64() * 1e3);
    h.insert("server-timing", HeaderValue::from_str(&timing).expect("ascii"));
    Ok(res)
}

/// The key set `key_id` parsed: from this replica's store or cache, or fetched from the shared state and
/// parsed like an upload (reserving the message and its parse from the request budget); 404 if unknown.
pub(crate) async fn keys_for(s: &AppState, svc: &Arc<BfvService>, key_id: &str) -> Result<Arc<Keys>, ApiError> {
    match svc.keys.lookup(&svc.limits, key_id).await? {
        Lookup::Ready(keys) => Ok(keys),
        Lookup::Unknown => Err(unknown_key()),
        Lookup::Fetched(raw) => {
            let bytes = raw.len();
            let Some(held) = s.budget().try_reserve(bytes * (1 + KEY_MEMORY_PER_BYTE)) else {
                return Err(crate::request::over_budget(s.budget(), bytes * (1 + KEY_MEMORY_PER_BYTE)));
            };
            let keys = Arc::new(on_worker(s, svc, held, move || more_bfv::wire::decode_any_keys(&raw)).await?);
            svc.keys.cache(key_id, keys.clone(), bytes);
            Ok(keys)
        }
    }
}

/// 422 `wrong_keys`: the key set is of the other kind.
pub(crate) fn wrong_keys(keys: &Keys, wanted: &str, made_by: &str) -> ApiError {
    ApiError::unprocessable(
        "wrong_keys",
        format!(
            "these are {} keys; {wanted} needs keys made by {made_by}: upload those and use their key_id",
            keys.kind()
        ),
    )
}

impl From<BfvError> for ApiError {
    fn from(e: BfvError) -> ApiError {
        match e {
            BfvError::Parameters(m) => ApiError::unprocessable("wrong_parameters", m),
            BfvError::Wire(m) | BfvError::Input(m) => ApiError::unprocessable("invalid_bfv", m),
            BfvError::Fhe(m) => ApiError::unprocessable("bfv_evaluation_failed", m),
            BfvError::Model(m) => ApiError::internal("the BFV model", m),
            BfvError::Stopped => {
                ApiError::unavailable("stopped", "the server stopped this evaluation (shutting down or cancelled)")
            }
        }
    }
}
