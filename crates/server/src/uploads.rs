//! Uploaded models ("bring your own model"): a client posts a more-nn model file and gets an unguessable id
//! under which `POST /api/v1/models/{id}/infer` runs it on ciphertexts like a bundled model.
//!
//! - `POST /api/v1/models` (`application/x-more-model`, at most [`UploadLimits::max_bytes`]) → `201`
//!   `{"id", "model", "expires_in_s"}` with `Location: /api/v1/models/{id}`; `model` is the entry
//!   `GET /api/v1/models/{id}` answers.
//! - `DELETE /api/v1/models/{id}` → `204`.
//!
//! The id is a capability: uploaded models are not listed by `GET /api/v1/models`, their ids never reach
//! the log (log lines and metrics say `uploaded`), and whoever holds one may use or delete the model. A
//! model lives [`UploadLimits::ttl`] after its last use (any lookup through its id); the server holds at
//! most [`UploadLimits::max_models`] (beyond that `503 model_store_full`), a client at most
//! [`UploadLimits::client_share`] (beyond that its least recently used upload is replaced). The models live
//! in this process or, with `--state redis://…`, in Redis ([`ModelStore`]), where every replica finds them.
//!
//! An upload is checked before it is stored, so that what is stored can always be served: the file decodes
//! (`Model::from_bytes`: magic, checksum, metadata, shapes, finite weights; 400 `malformed` with its
//! reason otherwise), its metadata is at most [`MAX_METADATA_BYTES`], its task is one the server has a
//! bundled model for and it takes and gives as many values as that model (its input may be shaped
//! differently, e.g. `[784]` for `[1, 28, 28]`), its preprocessing is usable, and one sample's forward pass
//! fits the memory budget and [`MAX_MULTIPLY_ADDS`] (422 otherwise). The server then gives it its id (the
//! file's own id is kept in `training.uploaded_as`), fills the labels and the preprocessing kind from the
//! task's bundled model when the file has none, and stores it.

use std::sync::Arc;
use std::time::Duration;

use axum::body::Body;
use axum::extract::State;
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use more_nn::Model;

use crate::budget::ComputeCost;
use crate::extract::{ApiPath, Client};
use crate::request::{BodyReader, BodyRules, Received};
use crate::state_store::models::{Lookup, ModelStore};
// The limits live apart so that the model store can read them without importing this module; they keep
// their public paths here.
pub use crate::upload_limits::{CLIENT_SHARES, MODEL_OVERHEAD_BYTES, UploadLimits};
use crate::{ApiError, AppState};

/// Media type of an uploaded model file.
pub const MEDIA_TYPE: &str = "application/x-more-model";

/// The first characters of every uploaded model's id (then 32 random hex digits).
pub const ID_PREFIX: &str = "upload-";

/// What log lines and metrics call an uploaded model: its id is a capability.
pub const LOGGED_ID: &str = "uploaded";

/// Largest JSON metadata of an uploaded model file (its parse and the listing made from it stay small).
pub const MAX_METADATA_BYTES: usize = 16 << 10;

/// Most multiply-adds one sample of an uploaded model may take (the bundled MNIST CNN takes 0.24 million):
/// about 0.1 s of one worker per sample, so a model cannot hold the workers much longer than the bundled
/// ones do.
pub const MAX_MULTIPLY_ADDS: usize = 100_000_000;

/// Most values any layer of an uploaded model may produce per sample.
pub const MAX_ELEMENTS: usize = 1 << 24;

/// Bytes an upload holds per body byte while it is checked: the body, the parsed weights and the file
/// written again with the new id.
pub const UPLOAD_MEMORY_PER_BYTE: usize = 3;

/// The uploaded models: their limits and their store.
pub struct Uploads {
    limits: UploadLimits,
    store: ModelStore,
}

impl std::fmt::Debug for Uploads {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Uploads").field("limits", &self.limits).finish_non_exhaustive()
    }
}

impl Uploads {
    /// Uploaded models held in this process.
    pub fn new(limits: UploadLimits) -> Self {
        Uploads { limits, store: ModelStore::default() }
    }

    /// Keeps the models in Redis instead (each replica caching a few parses).
    pub(crate) fn use_shared(&mut self, redis: crate::state_store::Redis) {
        self.store = ModelStore::redis(redis, &self.limits);
    }

    /// The limits.
    pub fn limits(&self) -> &UploadLimits {
        &self.limits
    }

    /// Memory the stored (or cached) models may take in this process: the models it may hold parsed times
    /// [`UploadLimits::model_memory`]. Uploads being checked and parses of models fetched from Redis
    /// reserve from the request budget.
    pub fn memory_bound(&self) -> usize {
        if self.limits.max_models == 0 {
            return 0;
        }
        self.store.models_held(&self.limits).saturating_mul(self.limits.model_memory())
    }
}

/// Whether `id` names an uploaded model (rather than a bundled one).
pub fn is_uploaded(id: &str) -> bool {
    id.starts_with(ID_PREFIX)
}

/// What a log line or a metric calls the model `id`.
pub fn logged(id: &str) -> &str {
    if is_uploaded(id) { LOGGED_ID } else { id }
}

fn uploads(s: &AppState) -> Result<&Uploads, ApiError> {
    s.inner
        .uploads
        .as_ref()
        .filter(|u| u.limits.max_models > 0)
        .ok_or_else(|| ApiError::not_found("this server takes no uploaded models (--uploaded-models 0)"))
}

/// The model `id`, bundled or uploaded (restarting an uploaded one's time to live); 404 `unknown_model`.
pub async fn find(s: &AppState, id: &str) -> Result<Arc<Model>, ApiError> {
    if let Some(m) = s.registry().get(id) {
        return Ok(m.clone());
    }
    let Some(up) = s.inner.uploads.as_ref().filter(|_| is_uploaded(id)) else {
        return Err(ApiError::unknown_model(id));
    };
    match up.store.lookup(&up.limits, id).await? {
        Lookup::Ready(model) => Ok(model),
        Lookup::Unknown => Err(unknown_upload()),
        Lookup::Fetched(file) => {
            // A model that lives in Redis and that this replica has not parsed yet (or dropped from its
            // cache): its file was checked when it was uploaded; parse it off the runtime, reserving the
            // file and its parse from the budget meanwhile.
            let need = file.len().saturating_mul(2);
            let held = s.budget().try_reserve(need).ok_or_else(|| crate::request::over_budget(s.budget(), need))?;
            let model = tokio::task::spawn_blocking(move || {
                let _held = held;
                Model::from_bytes(&file)
            })
            .await
            .map_err(|e| ApiError::internal("parsing an uploaded model", e))?
            .map_err(|e| ApiError::internal("parsing an uploaded model from the shared state", e))?;
            let model = Arc::new(model);
            up.store.cache(&up.limits, model.clone());
            Ok(model)
        }
    }
}

/// 404 `unknown_model` for an uploaded id that is not (or no longer) held.
fn unknown_upload() -> ApiError {
    ApiError::new(
        StatusCode::NOT_FOUND,
        "unknown_model",
        "no uploaded model with this id (expired, deleted, or replaced by a newer upload): upload it again",
    )
}

fn new_id() -> Result<String, ApiError> {
    crate::capability::random_id(ID_PREFIX, "a model id")
}

/// What an upload is checked against: the server's bundled models (one per task gives the task's input
/// size, outputs, labels and preprocessing kind), its request limits and its budget.
pub struct Checks<'a> {
    /// The bundled models.
    pub registry: &'a crate::Registry,
    /// The largest request body.
    pub max_body: usize,
    /// The memory budget, bytes.
    pub budget: usize,
}

fn invalid(code: &'static str, message: String) -> ApiError {
    ApiError::unprocessable(code, message)
}

/// Decodes and checks an uploaded model file (see the module docs) and gives it the id `id`. Returns the
/// model and its file as stored.
pub fn check_upload(bytes: &[u8], id: &str, checks: &Checks<'_>) -> Result<(Model, Vec<u8>), ApiError> {
    if bytes.len() >= 12 && bytes.starts_with(b"MORENN") {
        let json = u32::from_le_bytes(bytes[8..12].try_into().expect("4 bytes")) as usize;
        if json > MAX_METADATA_BYTES {
            return Err(invalid(
                "invalid_model",
                format!("the model's metadata is {json} bytes; uploaded models may have at most {MAX_METADATA_BYTES}"),
            ));
        }
    }
    let mut model = Model::from_bytes(bytes).map_err(|e| ApiError::malformed(e.to_string()))?;
    let meta = model.meta().clone();
    let tasks = || {
        let mut names: Vec<&str> = checks.registry.iter().map(|m| m.meta().task.as_str()).collect();
        names.sort_unstable();
        names.dedup();
        names.join(", ")
    };
    let bundled = checks.registry.iter().find(|m| m.meta().task == meta.task).ok_or_else(|| {
        invalid(
            "unknown_task",
            format!("this server runs no {:?} task; an uploaded model's task must be one of: {}", meta.task, tasks()),
        )
    })?;
    // Every shape below was checked by Model::new (no zero dimension, no overflowing product).
    let values: usize = model.input_shape().iter().product();
    let want: usize = bundled.input_shape().iter().product();
    if values != want {
        return Err(invalid(
            "wrong_shape",
            format!(
                "{} models take {want} values ({:?}, or another shape of as many); this one takes {:?}",
                meta.task,
                bundled.input_shape(),
                model.input_shape()
            ),
        ));
    }
    if model.output_len() != bundled.output_len() {
        return Err(invalid(
            "wrong_shape",
            format!(
                "{} models give {} outputs; this one gives {}",
                meta.task,
                bundled.output_len(),
                model.output_len()
            ),
        ));
    }
    if !meta.labels.is_empty() && meta.labels.len() != model.output_len() {
        return Err(invalid(
            "invalid_model",
            format!("{} labels for {} outputs", meta.labels.len(), model.output_len()),
        ));
    }
    let pre = &meta.preprocessing;
    let kind = &bundled.meta().preprocessing.kind;
    if !pre.kind.is_empty() && pre.kind != *kind {
        return Err(invalid(
            "invalid_model",
            format!("{} models take {kind:?} preprocessing, this one says {:?}", meta.task, pre.kind),
        ));
    }
    pre.normalization().map_err(|e| invalid("invalid_model", e.to_string()))?;
    for (name, v) in [("mean", &pre.mean), ("std", &pre.std)] {
        if v.len() != 1 && v.len() != values {
            return Err(invalid(
                "invalid_model",
                format!("preprocessing {name} has {} values: 1 or one per input value ({values})", v.len()),
            ));
        }
    }
    let mut shape = model.input_shape().to_vec();
    for layer in model.layers() {
        shape = layer.output_shape(&shape).map_err(|e| ApiError::internal("an uploaded model's shapes", e))?;
        let n: usize = shape.iter().product();
        if n > MAX_ELEMENTS {
            return Err(invalid(
                "too_costly",
                format!("layer {} gives {n} values per sample (at most {MAX_ELEMENTS})", layer.describe()),
            ));
        }
    }
    let macs = model.multiply_adds();
    if macs > MAX_MULTIPLY_ADDS {
        return Err(invalid(
            "too_costly",
            format!("{macs} multiply-adds per sample; uploaded models may take at most {MAX_MULTIPLY_ADDS}"),
        ));
    }
    let cost = ComputeCost::of(&model);
    let body = cost.header + cost.input_per_sample;
    let reserved = cost.reservation(body, 1);
    if body > checks.max_body || reserved > checks.budget {
        return Err(invalid(
            "too_costly",
            format!(
                "one encrypted sample takes {body} bytes and its forward pass {reserved} bytes of memory; this \
                 server allows {} and {}",
                checks.max_body, checks.budget
            ),
        ));
    }
    let m = model.meta_mut();
    m.training.insert("uploaded_as".into(), meta.id.chars().take(64).collect());
    m.id = id.to_string();
    if m.labels.is_empty() {
        m.labels = bundled.meta().labels.clone();
    }
    if m.preprocessing.kind.is_empty() {
        m.preprocessing.kind = kind.clone();
    }
    let file = model.to_bytes();
    Ok((model, file))
}

/// The answer to an upload.
#[derive(serde::Serialize)]
struct Created<'a> {
    id: &'a str,
    model: crate::model_info::ModelInfo,
    expires_in_s: u64,
}

/// `POST /api/v1/models`.
pub async fn upload(
    State(s): State<AppState>,
    Client(client): Client,
    headers: HeaderMap,
    body: Body,
) -> Result<Response, ApiError> {
    let up = uploads(&s)?;
    let limits = *up.limits();
    let rules = BodyRules {
        media_type: MEDIA_TYPE,
        limit: limits.max_bytes,
        per_byte: UPLOAD_MEMORY_PER_BYTE,
        deadline: s.limits().request_timeout + Duration::from_secs((limits.max_bytes >> 20) as u64),
    };
    let reader = BodyReader::new(&headers, body, rules, s.budget())?;
    // Room first (a dry run of the store), so a full store costs no read or parse.
    up.store.check_room(&limits, &client).await?;
    let Received { bytes, reservation } = reader.read_all().await?;
    let id = new_id()?;
    let state = s.clone();
    let given = id.clone();
    let (model, file) = tokio::task::spawn_blocking(move || {
        let _held = reservation;
        let checks =
            Checks { registry: state.registry(), max_body: state.limits().max_body, budget: state.budget().total() };
        check_upload(&bytes, &given, &checks)
    })
    .await
    .map_err(|e| ApiError::internal("checking an uploaded model", e))??;
    // Serialised as GET /api/v1/models/{id} serialises it (numbers written from their own type).
    let reply =
        Created { id: &id, model: crate::model_info::model_info(&s, &model), expires_in_s: limits.ttl.as_secs() };
    let mut res = (StatusCode::CREATED, axum::Json(reply)).into_response();
    up.store.insert(&limits, &client, model, &file).await?;
    tracing::info!(bytes = file.len(), "model uploaded");
    let location = HeaderValue::from_str(&format!("/api/v1/models/{id}")).expect("ascii");
    res.headers_mut().insert(header::LOCATION, location);
    Ok(res)
}

/// `DELETE /api/v1/models/{id}`.
pub async fn delete(State(s): State<AppState>, ApiPath(id): ApiPath<String>) -> Result<Response, ApiError> {
    if s.registry().get(&id).is_some() {
        return Err(ApiError::new(
            StatusCode::CONFLICT,
            "bundled_model",
            "bundled models cannot be deleted through the API; only uploaded ones (ids starting with upload-)",
        ));
    }
    let up = uploads(&s)?;
    if is_uploaded(&id) && up.store.remove(&id).await? {
        Ok(StatusCode::NO_CONTENT.into_response())
    } else {
        Err(unknown_upload())
    }
}
