//! # more-server
//!
//! The encrypted-inference server: serves the page (`index.html`, `web/`) and runs the more-nn models of a
//! directory on MORE ciphertexts. It never receives a key, logs no payloads and keeps no ciphertext after
//! answering. The API is documented in `docs/api.md`:
//!
//! - `GET /api/v1/health`, `GET /api/v1/models` (+ `GET /api/v1/models/{id}`), `GET /api/v1/samples`
//!   (+ `GET /api/v1/samples/{file}`), `GET /api/v1/openapi.yaml`,
//! - `POST /api/v1/models/{id}/infer` with an `application/x-more-tensor` body,
//! - `GET /metrics` (Prometheus text format, [`metrics`]),
//! - the class challenges under `/api/v1/challenges` (see [`challenge`]; the teacher's routes need the
//!   [`TeacherToken`]).
//! - BFV: `POST /api/v1/bfv/keys`, `POST /api/v1/bfv/models/{id}/infer?key_id=` ([`bfv`]).
//! - training jobs on encrypted data ([`jobs`]): `GET /api/v1/training`, `POST /api/v1/jobs`,
//!   `GET|DELETE /api/v1/jobs/{id}`, `GET /api/v1/jobs/{id}/events` (Server-Sent Events),
//!   `GET /api/v1/jobs/{id}/model`.
//!
//! Memory: every admitted inference request reserves its bodies' and its forward pass's memory from one
//! budget ([`budget`]), so the process stays below the bound [`AppState::memory_bound`] whatever the worker
//! count.
//!
//! [`app`] builds the router from an [`AppState`]; `main.rs` only parses flags and serves. An inference
//! request goes: route → model lookup and media type → `Content-Length` against the model's limit →
//! admission (requests in flight, memory budget) → [`wire::read_input`] (the header parsed once, as it
//! arrives, and checked against the model; then the planes) → [`Engine::infer`] (a bounded queue, worker
//! threads merging concurrent requests) → the encoded answer. Failures are [`ApiError`]s.

pub mod allocator;
pub mod bfv;
pub mod budget;
pub mod challenge;
pub mod conn;
pub mod engine;
pub mod error;
pub mod extract;
pub mod glyphs;
pub mod jobs;
pub mod metrics;
pub mod openapi;
pub mod samples;
pub mod teacher;
pub mod training_data;
pub mod wire;

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use axum::Router;
use axum::body::Body;
use axum::extract::{DefaultBodyLimit, Request, State};
use axum::http::{HeaderMap, HeaderName, HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use budget::{Bound, Budget, ComputeCost};
use metrics::Metrics;
use serde::Serialize;
use tokio::sync::Semaphore;
use tower_http::compression::CompressionLayer;
use tower_http::request_id::{MakeRequestId, PropagateRequestIdLayer, RequestId, SetRequestIdLayer};
use tower_http::services::{ServeDir, ServeFile};
use tower_http::set_header::SetResponseHeaderLayer;
use tower_http::trace::TraceLayer;

pub use challenge::ChallengeLimits;
pub use engine::{Engine, EngineConfig, Registry};
pub use error::ApiError;
use extract::ApiPath;
pub use more_nn::EncryptedForm;
pub use samples::Samples;
pub use teacher::TeacherToken;

/// Request limits.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Limits {
    /// Largest leading batch dimension accepted in one request.
    pub max_batch: usize,
    /// Hard cap on any request body (bytes); a model's own limit is `max_batch` inputs in `f32`.
    pub max_body: usize,
    /// Inference requests admitted at once (reading, queued or computing); one more is answered 503.
    pub max_inflight: usize,
    /// Time allowed for reading the body and for waiting for the answer.
    pub request_timeout: Duration,
    /// Memory (bytes) that admitted inference requests may hold together: each reserves
    /// [`MEMORY_PER_BODY_BYTE`] times its body size (or its model's body limit when the length is not
    /// announced) plus its samples' compute memory ([`budget::ComputeCost`]) until its job is done; a
    /// request that does not fit is answered 503.
    pub memory_budget: usize,
}

/// Bytes reserved per body byte: the body buffer, the decoded tensor, its copy in a merged batch and the
/// copy of the chunk the forward pass works on.
pub const MEMORY_PER_BODY_BYTE: usize = budget::BODY_COPIES;

impl Default for Limits {
    fn default() -> Self {
        Limits {
            max_batch: 16,
            max_body: 32 << 20,
            max_inflight: 256,
            request_timeout: Duration::from_secs(10),
            memory_budget: 256 << 20,
        }
    }
}

/// Everything the handlers share.
#[derive(Debug, Clone)]
pub struct AppState {
    inner: Arc<Inner>,
}

#[derive(Debug)]
struct Inner {
    registry: Registry,
    engine: Engine,
    limits: Limits,
    web: Option<PathBuf>,
    samples: Samples,
    challenges: challenge::Store,
    bfv: Option<Arc<bfv::BfvService>>,
    inflight: Arc<Semaphore>,
    budget: Budget,
    /// Compute memory of each model, by id.
    costs: BTreeMap<String, ComputeCost>,
    bound: Bound,
    metrics: Arc<Metrics>,
    started: Instant,
    jobs: Option<Arc<jobs::Jobs>>,
    training_data: Option<training_data::TrainingData>,
}

impl AppState {
    /// State over loaded models, starting the engine's workers.
    /// The memory bound assumes [`budget::DEFAULT_MAX_CONNECTIONS`] connections and as many async
    /// runtime threads as CPUs; [`AppState::with_bound_for`] sets the real figures.
    pub fn new(registry: Registry, engine: EngineConfig, limits: Limits) -> Self {
        let metrics = Arc::new(Metrics::new());
        let observer = Arc::clone(&metrics);
        let engine = Engine::start_observed(
            engine,
            Some(Arc::new(move |model: &str, samples, took| observer.observe_pass(model, samples, took))),
        );
        let costs = registry.iter().map(|m| (m.meta().id.clone(), ComputeCost::of(m))).collect();
        let budget = Budget::new(limits.memory_budget);
        let cpus = std::thread::available_parallelism().map_or(2, |n| n.get());
        let bound = Bound::new(
            registry.iter().map(|m| &**m),
            engine.config().workers + cpus,
            budget::DEFAULT_MAX_CONNECTIONS,
            budget.total(),
        );
        AppState {
            inner: Arc::new(Inner {
                registry,
                engine,
                limits,
                web: None,
                samples: Samples::default(),
                challenges: challenge::Store::default(),
                bfv: None,
                inflight: Arc::new(Semaphore::new(limits.max_inflight.max(1))),
                budget,
                costs,
                bound,
                metrics,
                started: Instant::now(),
                jobs: None,
                training_data: None,
            }),
        }
    }

    /// Recomputes the memory bound for `runtime_threads` async runtime threads and at most
    /// `max_connections` open connections.
    pub fn with_bound_for(mut self, runtime_threads: usize, max_connections: usize) -> Self {
        let inner = Arc::get_mut(&mut self.inner).expect("configure before use");
        inner.bound = Bound::new(
            inner.registry.iter().map(|m| &**m),
            inner.engine.config().workers + runtime_threads,
            max_connections,
            inner.budget.total(),
        )
        .with_extras_of(&inner.bound);
        self
    }

    /// The bound on the process's resident memory.
    pub fn memory_bound(&self) -> Bound {
        self.inner.bound
    }

    /// The memory budget.
    pub fn budget(&self) -> &Budget {
        &self.inner.budget
    }

    /// The engine.
    pub fn engine(&self) -> &Engine {
        &self.inner.engine
    }

    /// The metrics.
    pub fn metrics(&self) -> &Arc<Metrics> {
        &self.inner.metrics
    }

    /// Bytes an inference request on `model` with a body of `body_bytes` reserves from the budget.
    pub fn reservation(&self, model: &more_nn::Model, body_bytes: usize) -> usize {
        let cost = self.inner.costs.get(&model.meta().id).copied().unwrap_or_else(|| ComputeCost::of(model));
        cost.reservation(body_bytes, cost.samples_in(body_bytes))
    }

    /// Also serve `index.html` and `web/` from this directory.
    pub fn with_web(mut self, dir: impl Into<PathBuf>) -> Self {
        Arc::get_mut(&mut self.inner).expect("configure before use").web = Some(dir.into());
        self
    }

    /// Also list and serve these sample images.
    pub fn with_samples(mut self, samples: Samples) -> Self {
        Arc::get_mut(&mut self.inner).expect("configure before use").samples = samples;
        self
    }

    /// Also host class challenges, created by the holder of this token, within these limits.
    pub fn with_challenges(mut self, token: TeacherToken, limits: ChallengeLimits) -> Self {
        Arc::get_mut(&mut self.inner).expect("configure before use").challenges =
            challenge::Store::new(Some(token), limits);
        self
    }

    /// The class challenges.
    pub fn challenges(&self) -> &challenge::Store {
        &self.inner.challenges
    }

    /// Also serve BFV models (keys upload and BFV inference).
    pub fn with_bfv(mut self, service: bfv::BfvService) -> Self {
        let inner = Arc::get_mut(&mut self.inner).expect("configure before use");
        inner.bound.bfv = service.memory_bound();
        inner.bfv = Some(Arc::new(service));
        self
    }

    /// The BFV service, if any.
    pub fn bfv(&self) -> Option<&Arc<bfv::BfvService>> {
        self.inner.bfv.as_ref()
    }

    /// Also run training jobs (without this, the job routes answer 404 `training_disabled`).
    pub fn with_jobs(mut self, jobs: Arc<jobs::Jobs>) -> Self {
        let inner = Arc::get_mut(&mut self.inner).expect("configure before use");
        inner.bound.training = jobs.memory_bound();
        inner.jobs = Some(jobs);
        self
    }

    /// Also offer this sample training data to the page (its bytes join the memory bound).
    pub fn with_training_data(mut self, data: training_data::TrainingData) -> Self {
        let inner = Arc::get_mut(&mut self.inner).expect("configure before use");
        inner.bound.data = data.bytes();
        inner.training_data = Some(data);
        self
    }

    /// The sample training data, if offered.
    pub fn training_data(&self) -> Option<&training_data::TrainingData> {
        self.inner.training_data.as_ref()
    }

    /// The training jobs, if the server trains.
    pub fn jobs(&self) -> Option<&Arc<jobs::Jobs>> {
        self.inner.jobs.as_ref()
    }

    /// The loaded models.
    pub fn registry(&self) -> &Registry {
        &self.inner.registry
    }

    /// The limits.
    pub fn limits(&self) -> Limits {
        self.inner.limits
    }

    /// Body limit for one model: `max_batch` inputs of `f32` planes plus the header, capped by `max_body`.
    pub fn body_limit(&self, model: &more_nn::Model) -> usize {
        let per_sample = 4 * 4 * model.input_shape().iter().product::<usize>();
        let header = 8 + 4 * (model.input_shape().len() + 1);
        (header + per_sample * self.inner.limits.max_batch).min(self.inner.limits.max_body)
    }
}

/// Request ids `r1`, `r2`, ... (unique per process), set on the request and echoed as `x-request-id`.
#[derive(Debug, Clone, Default)]
struct Counter(Arc<AtomicU64>);

impl MakeRequestId for Counter {
    fn make_request_id<B>(&mut self, _: &axum::http::Request<B>) -> Option<RequestId> {
        let n = self.0.fetch_add(1, Ordering::Relaxed) + 1;
        HeaderValue::from_str(&format!("r{n}")).ok().map(RequestId::new)
    }
}

/// The router: API, samples and (if configured) the static site. No CORS layer: cross-origin pages cannot
/// read the answers.
pub fn app(state: AppState) -> Router {
    let x_request_id = HeaderName::from_static("x-request-id");
    let api = Router::new()
        .route("/api/v1/health", get(health))
        .route("/api/v1/models", get(models))
        .route("/api/v1/models/{id}", get(model_one))
        .route("/api/v1/models/{id}/infer", post(infer))
        .route("/api/v1/samples", get(samples::list))
        .route("/api/v1/samples/{file}", get(samples::file))
        .route("/api/v1/openapi.yaml", get(openapi::document))
        .route("/metrics", get(metrics::handler))
        .route("/api/v1/challenges", post(challenge::create))
        .route("/api/v1/challenges/{id}", get(challenge::info))
        .route("/api/v1/challenges/{id}/ciphertext", get(challenge::ciphertext))
        .route("/api/v1/challenges/{id}/answers", post(challenge::answer).get(challenge::answers))
        .merge(bfv::routes())
        .route("/api/v1/training", get(jobs::info))
        .route("/api/v1/training/samples/mnist", get(training_data::mnist))
        .route("/api/v1/jobs", post(jobs::create))
        .route("/api/v1/jobs/{id}", get(jobs::status).delete(jobs::delete))
        .route("/api/v1/jobs/{id}/events", get(jobs::events))
        .route("/api/v1/jobs/{id}/model", get(jobs::model))
        .route("/api/{*rest}", axum::routing::any(api_not_found))
        .method_not_allowed_fallback(method_not_allowed)
        .layer(DefaultBodyLimit::disable())
        .layer(SetResponseHeaderLayer::if_not_present(header::CACHE_CONTROL, HeaderValue::from_static("no-store")))
        .with_state(state.clone());

    let mut router = api;
    if let Some(web) = &state.inner.web {
        let site = Router::new()
            .route_service("/", ServeFile::new(web.join("index.html")))
            .route_service("/index.html", ServeFile::new(web.join("index.html")))
            .nest_service("/web", ServeDir::new(web.join("web")))
            .layer(CompressionLayer::new())
            .layer(SetResponseHeaderLayer::if_not_present(header::CACHE_CONTROL, HeaderValue::from_static("no-cache")));
        router = router.merge(site);
    }
    router
        .fallback(not_found)
        .layer(SetResponseHeaderLayer::if_not_present(
            header::X_CONTENT_TYPE_OPTIONS,
            HeaderValue::from_static("nosniff"),
        ))
        .layer(SetResponseHeaderLayer::if_not_present(
            HeaderName::from_static("referrer-policy"),
            HeaderValue::from_static("no-referrer"),
        ))
        .layer(axum::middleware::from_fn_with_state(state.clone(), metrics::track))
        .layer(PropagateRequestIdLayer::new(x_request_id.clone()))
        .layer(
            TraceLayer::new_for_http()
                .make_span_with(|req: &Request| {
                    let id = req.headers().get("x-request-id").and_then(|v| v.to_str().ok()).unwrap_or("-");
                    tracing::info_span!("request", id, method = %req.method(), path = %req.uri().path())
                })
                .on_request(())
                .on_response(|res: &Response, latency: Duration, _: &tracing::Span| {
                    // Successful inferences already logged their timings ("inferred"): keep one line each.
                    let (status, us) = (res.status().as_u16(), latency.as_micros() as u64);
                    if res.status().is_server_error() {
                        tracing::warn!(status, latency_us = us, "done");
                    } else if res.status().is_client_error() {
                        tracing::info!(status, latency_us = us, "done");
                    } else {
                        tracing::debug!(status, latency_us = us, "done");
                    }
                }),
        )
        .layer(SetRequestIdLayer::new(x_request_id, Counter::default()))
}

#[derive(Serialize)]
struct Health {
    status: &'static str,
    version: &'static str,
    models: usize,
    uptime_s: u64,
    workers: usize,
    memory: HealthMemory,
}

#[derive(Serialize)]
struct HealthMemory {
    bound_bytes: usize,
    budget_bytes: usize,
    budget_in_use_bytes: usize,
    bound: Bound,
}

async fn health(State(s): State<AppState>) -> impl IntoResponse {
    axum::Json(Health {
        status: "ok",
        version: env!("CARGO_PKG_VERSION"),
        models: s.registry().len(),
        uptime_s: s.inner.started.elapsed().as_secs(),
        workers: s.engine().config().workers,
        memory: HealthMemory {
            bound_bytes: s.memory_bound().total(),
            budget_bytes: s.budget().total(),
            budget_in_use_bytes: s.budget().in_use(),
            bound: s.memory_bound(),
        },
    })
}

/// One entry of `GET /api/v1/models`: the model's metadata plus what a client needs to call it. With the
/// coefficient form (the default), `operations` starts with its conversion, marked as using the 2x2
/// structure, and `ring_only` is `false` for every model; `layers_ring_only` says whether the layers
/// themselves are ring-only.
#[derive(Serialize)]
struct ModelInfo {
    #[serde(flatten)]
    meta: more_nn::ModelMeta,
    output_len: usize,
    ring_only: bool,
    layers_ring_only: bool,
    encrypted_form: &'static str,
    max_batch: usize,
    max_body_bytes: usize,
    infer_url: String,
    media_type: &'static str,
    scheme: &'static str,
}

fn model_info(s: &AppState, m: &more_nn::Model) -> ModelInfo {
    let form = s.inner.engine.config().form;
    let mut meta = m.meta().clone();
    if let Some(op) = form.operation() {
        meta.operations.insert(0, op);
    }
    ModelInfo {
        meta,
        output_len: m.output_len(),
        ring_only: m.is_ring_only() && !form.uses_2x2_structure(),
        layers_ring_only: m.is_ring_only(),
        encrypted_form: form.name(),
        max_batch: s.inner.limits.max_batch,
        max_body_bytes: s.body_limit(m),
        infer_url: format!("/api/v1/models/{}/infer", m.meta().id),
        media_type: more_core::codec::MEDIA_TYPE,
        scheme: "more",
    }
}

async fn models(State(s): State<AppState>) -> impl IntoResponse {
    let mut list: Vec<serde_json::Value> =
        s.registry().iter().map(|m| serde_json::to_value(model_info(&s, m)).unwrap_or_default()).collect();
    if let Some(b) = s.bfv() {
        list.extend(b.model_entries());
    }
    axum::Json(serde_json::json!({ "models": list }))
}

async fn model_one(State(s): State<AppState>, ApiPath(id): ApiPath<String>) -> Result<Response, ApiError> {
    let m = s.registry().get(&id).ok_or_else(|| ApiError::unknown_model(&id))?;
    Ok(axum::Json(model_info(&s, m)).into_response())
}

async fn api_not_found(req: Request) -> ApiError {
    ApiError::not_found(format!("no API route {} {}", req.method(), req.uri().path()))
}

async fn method_not_allowed(req: Request) -> ApiError {
    ApiError::new(
        StatusCode::METHOD_NOT_ALLOWED,
        "method_not_allowed",
        format!("{} is not allowed on {}", req.method(), req.uri().path()),
    )
}

async fn not_found() -> ApiError {
    ApiError::not_found("not found")
}

/// Whether the request's `Content-Type` is `wanted` (parameters such as `; charset=utf-8` ignored). `Err`
/// carries the header as sent (`None` if absent), for the 415 message.
pub(crate) fn has_media_type<'h>(headers: &'h HeaderMap, wanted: &str) -> Result<(), Option<&'h str>> {
    let ct = headers.get(header::CONTENT_TYPE).map(|v| v.to_str().unwrap_or("<not text>"));
    let essence = ct.map(|c| c.split(';').next().unwrap_or("").trim());
    match essence {
        Some(e) if e.eq_ignore_ascii_case(wanted) => Ok(()),
        _ => Err(ct),
    }
}

fn media_type_ok(headers: &HeaderMap) -> Result<(), ApiError> {
    has_media_type(headers, more_core::codec::MEDIA_TYPE).map_err(ApiError::unsupported_media_type)
}

fn ms(d: Duration) -> f64 {
    d.as_secs_f64() * 1e3
}

async fn infer(
    State(s): State<AppState>,
    ApiPath(id): ApiPath<String>,
    headers: HeaderMap,
    body: Body,
) -> Result<Response, ApiError> {
    let model = s.registry().get(&id).ok_or_else(|| ApiError::unknown_model(&id))?.clone();
    media_type_ok(&headers)?;
    let limit = s.body_limit(&model);
    let content_length = headers.get(header::CONTENT_LENGTH).and_then(|v| v.to_str().ok()?.parse::<u64>().ok());
    if let Some(len) = content_length
        && len > limit as u64
    {
        return Err(ApiError::too_large(len, limit));
    }
    let Ok(_permit) = s.inner.inflight.clone().try_acquire_owned() else {
        return Err(ApiError::unavailable("overloaded", "too many inference requests in flight; retry shortly"));
    };
    let _counted = s.metrics().inference_started();
    let reserve = s.reservation(&model, content_length.map_or(limit, |l| l as usize).max(1));
    let Some(memory) = s.budget().try_reserve(reserve) else {
        if !s.budget().could_fit(reserve) {
            return Err(ApiError::unavailable(
                "overloaded",
                format!(
                    "this request needs {} KiB of the server's memory budget of {} KiB: send fewer samples per request",
                    reserve.div_ceil(1024),
                    s.budget().total() >> 10
                ),
            ));
        }
        return Err(ApiError::unavailable("overloaded", "the server's memory budget is in use; retry shortly"));
    };
    let timeout = s.inner.limits.request_timeout;
    let t0 = Instant::now();
    let expected = wire::Expected { input_shape: model.input_shape(), max_batch: s.inner.limits.max_batch, limit };
    let wire::Input { tensor, samples, batched } =
        tokio::time::timeout(timeout, wire::read_input(body, content_length, expected))
            .await
            .map_err(|_| ApiError::new(StatusCode::REQUEST_TIMEOUT, "timeout", "the request body took too long"))??;
    let decode = t0.elapsed();

    let computed = tokio::time::timeout(
        timeout.saturating_sub(decode),
        s.inner.engine.infer_holding(model.clone(), tensor, Some(Box::new(memory))),
    )
    .await
    .map_err(|_| ApiError::unavailable("timeout", "the inference did not finish in time; retry shortly"))??;

    let t2 = Instant::now();
    let mut output = computed.output;
    if !batched {
        output = output.reshape(&[model.output_len()]).map_err(|e| ApiError::internal("removing the batch axis", e))?;
    }
    let bytes = more_core::encode(&output);
    let encode = t2.elapsed();
    tracing::info!(
        model = %id,
        samples,
        batch = computed.batch_samples,
        decode_us = decode.as_micros() as u64,
        queue_us = computed.queue.as_micros() as u64,
        compute_us = computed.compute.as_micros() as u64,
        "inferred"
    );
    let timing = format!(
        "decode;dur={:.3}, queue;dur={:.3}, compute;dur={:.3};desc=\"batch {}\", encode;dur={:.3}",
        ms(decode),
        ms(computed.queue),
        ms(computed.compute),
        computed.batch_samples,
        ms(encode)
    );
    let mut res = (StatusCode::OK, bytes).into_response();
    let h = res.headers_mut();
    h.insert(header::CONTENT_TYPE, HeaderValue::from_static(more_core::codec::MEDIA_TYPE));
    h.insert(HeaderName::from_static("server-timing"), HeaderValue::from_str(&timing).expect("ascii"));
    h.insert(
        HeaderName::from_static("x-more-encrypted-form"),
        HeaderValue::from_static(s.inner.engine.config().form.name()),
    );
    Ok(res)
}
