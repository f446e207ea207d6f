//! # more-server
//!
//! The encrypted-inference server: serves the page (`index.html`, `web/`) and runs the more-nn models of a
//! directory on MORE ciphertexts. It never receives a key, logs no payloads and keeps no ciphertext after
//! answering. The API is documented in `docs/api.md`:
//!
//! - `GET /api/v1/health`, `GET /api/v1/models`, `GET /api/v1/samples` (+ `GET /api/v1/samples/{file}`),
//! - `POST /api/v1/models/{id}/infer` with an `application/x-more-tensor` body.
//!
//! [`app`] builds the router from an [`AppState`]; `main.rs` only parses flags and serves.

pub mod conn;
pub mod engine;
pub mod error;
pub mod samples;
pub mod wire;

use std::path::PathBuf;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use axum::Router;
use axum::body::Body;
use axum::extract::{DefaultBodyLimit, Path, Request, State};
use axum::http::{HeaderMap, HeaderName, HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use more_core::AnyTensor;
use serde::Serialize;
use tokio::sync::Semaphore;
use tower_http::compression::CompressionLayer;
use tower_http::request_id::{MakeRequestId, PropagateRequestIdLayer, RequestId, SetRequestIdLayer};
use tower_http::services::{ServeDir, ServeFile};
use tower_http::set_header::SetResponseHeaderLayer;
use tower_http::trace::TraceLayer;

pub use engine::{Engine, EngineConfig, Registry};
pub use error::ApiError;
pub use more_nn::EncryptedForm;
pub use samples::Samples;

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
    /// announced) until it is answered; a request that does not fit is answered 503.
    pub memory_budget: usize,
}

/// Bytes reserved per body byte: the body buffer, the decoded tensor, its copy in a merged batch and the
/// activations of the forward pass.
pub const MEMORY_PER_BODY_BYTE: usize = 4;

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
    inflight: Arc<Semaphore>,
    /// Memory budget in KiB permits.
    memory: Arc<Semaphore>,
    started: Instant,
}

impl AppState {
    /// State over loaded models, starting the engine's workers.
    pub fn new(registry: Registry, engine: EngineConfig, limits: Limits) -> Self {
        AppState {
            inner: Arc::new(Inner {
                registry,
                engine: Engine::start(engine),
                limits,
                web: None,
                samples: Samples::default(),
                inflight: Arc::new(Semaphore::new(limits.max_inflight.max(1))),
                memory: Arc::new(Semaphore::new((limits.memory_budget >> 10).clamp(1, Semaphore::MAX_PERMITS))),
                started: Instant::now(),
            }),
        }
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
}

async fn health(State(s): State<AppState>) -> impl IntoResponse {
    axum::Json(Health {
        status: "ok",
        version: env!("CARGO_PKG_VERSION"),
        models: s.registry().len(),
        uptime_s: s.inner.started.elapsed().as_secs(),
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
    }
}

async fn models(State(s): State<AppState>) -> impl IntoResponse {
    let list: Vec<_> = s.registry().iter().map(|m| model_info(&s, m)).collect();
    axum::Json(serde_json::json!({ "models": list }))
}

async fn model_one(State(s): State<AppState>, Path(id): Path<String>) -> Result<Response, ApiError> {
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

fn media_type_ok(headers: &HeaderMap) -> Result<(), ApiError> {
    let ct = headers.get(header::CONTENT_TYPE).map(|v| v.to_str().unwrap_or("<not text>"));
    let essence = ct.map(|c| c.split(';').next().unwrap_or("").trim());
    match essence {
        Some(e) if e.eq_ignore_ascii_case(more_core::codec::MEDIA_TYPE) => Ok(()),
        _ => Err(ApiError::unsupported_media_type(ct)),
    }
}

fn ms(d: Duration) -> f64 {
    d.as_secs_f64() * 1e3
}

async fn infer(
    State(s): State<AppState>,
    Path(id): Path<String>,
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
    let reserve = content_length.map_or(limit, |l| l as usize).max(1) * MEMORY_PER_BODY_BYTE;
    let kib = u32::try_from(reserve.div_ceil(1024)).unwrap_or(u32::MAX);
    let Ok(_memory) = s.inner.memory.clone().try_acquire_many_owned(kib) else {
        return Err(ApiError::unavailable("overloaded", "the server's memory budget is in use; retry shortly"));
    };
    let timeout = s.inner.limits.request_timeout;
    let t0 = Instant::now();
    let tensor = tokio::time::timeout(timeout, wire::read_tensor(body, content_length, limit))
        .await
        .map_err(|_| ApiError::new(StatusCode::REQUEST_TIMEOUT, "timeout", "the request body took too long"))??;
    let mut input = match tensor {
        AnyTensor::F32(t) => t,
        AnyTensor::F64(_) => {
            return Err(ApiError::unprocessable(
                "wrong_dtype",
                "this model takes f32 planes (dtype 1), the body has f64",
            ));
        }
    };
    let want = model.input_shape();
    let shape = input.shape().to_vec();
    let batched = if shape == want {
        false
    } else if shape.len() == want.len() + 1 && shape[1..] == *want {
        true
    } else {
        return Err(ApiError::unprocessable(
            "wrong_shape",
            format!("model {id} takes shape {want:?} or [N, ...{want:?}], the body has {shape:?}"),
        ));
    };
    if batched && shape[0] > s.inner.limits.max_batch {
        return Err(ApiError::unprocessable(
            "wrong_shape",
            format!("batch of {} exceeds the limit of {}", shape[0], s.inner.limits.max_batch),
        ));
    }
    if !batched {
        let mut with_batch = vec![1];
        with_batch.extend_from_slice(&shape);
        input = input.reshape(&with_batch).map_err(|e| ApiError::internal(e.to_string()))?;
    }
    let decode = t0.elapsed();

    let computed = tokio::time::timeout(timeout.saturating_sub(decode), s.inner.engine.infer(model.clone(), input))
        .await
        .map_err(|_| ApiError::unavailable("timeout", "the inference did not finish in time; retry shortly"))?
        .map_err(|e| match e {
            engine::JobError::QueueFull => ApiError::queue_full(),
            engine::JobError::ShuttingDown => ApiError::unavailable("shutting_down", e.to_string()),
            engine::JobError::Rejected(m) => ApiError::unprocessable("invalid_ciphertext", m),
            engine::JobError::Panicked => ApiError::internal(e.to_string()),
        })?;

    let t2 = Instant::now();
    let mut output = computed.output;
    if !batched {
        output = output.reshape(&[model.output_len()]).map_err(|e| ApiError::internal(e.to_string()))?;
    }
    let bytes = more_core::encode(&output);
    let encode = t2.elapsed();
    tracing::info!(
        model = %id,
        samples = if batched { shape[0] } else { 1 },
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
