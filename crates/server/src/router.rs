//! The router ([`app`]): the API routes, the static site, and the layers every answer goes through
//! (request ids, logging, metrics, security headers).

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use axum::Router;
use axum::extract::{DefaultBodyLimit, Request, State};
use axum::http::{HeaderName, HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use serde::Serialize;
use tower_http::compression::CompressionLayer;
use tower_http::request_id::{MakeRequestId, PropagateRequestIdLayer, RequestId, SetRequestIdLayer};
use tower_http::services::{ServeDir, ServeFile};
use tower_http::set_header::SetResponseHeaderLayer;
use tower_http::trace::TraceLayer;

use crate::budget::Bound;
use crate::extract::ApiPath;
use crate::model_info::model_info;
use crate::{ApiError, AppState, bfv, challenge, infer, jobs, metrics, openapi, samples, training_data, uploads};

/// Request ids `r1`, `r2`, ... (unique per process), set on the request and echoed as `x-request-id`.
#[derive(Debug, Clone, Default)]
struct Counter(Arc<AtomicU64>);

impl MakeRequestId for Counter {
    fn make_request_id<B>(&mut self, _: &axum::http::Request<B>) -> Option<RequestId> {
        let n = self.0.fetch_add(1, Ordering::Relaxed) + 1;
        HeaderValue::from_str(&format!("r{n}")).ok().map(RequestId::new)
    }
}

/// The Content-Security-Policy of the site: scripts, styles, workers, fonts and connections from this
/// origin only; WebAssembly compilation allowed (`'wasm-unsafe-eval'`, no JavaScript `eval`); inline
/// styles allowed (KaTeX positions its glyphs with `style` attributes); images also from `data:` and
/// `blob:` URLs (the page draws ciphertext planes and previews uploads); no plugins, no `<base>`, no form
/// posts elsewhere, and no framing by any page (`frame-ancestors 'none'`, with `X-Frame-Options: DENY`
/// for older browsers).
pub const CONTENT_SECURITY_POLICY: &str = "default-src 'self'; script-src 'self' 'wasm-unsafe-eval'; \
style-src 'self' 'unsafe-inline'; img-src 'self' data: blob:; font-src 'self'; connect-src 'self'; \
worker-src 'self'; object-src 'none'; base-uri 'self'; form-action 'self'; frame-ancestors 'none'";

/// The path a log line shows: the route's pattern when the request matched one (`/api/v1/jobs/{id}`), so
/// ids that are capabilities (job ids, BFV key ids, challenge ids) never reach the log; otherwise the path
/// itself (a static file, or a path no route knows), cut at 100 characters.
fn logged_path(req: &Request) -> String {
    match req.extensions().get::<axum::extract::MatchedPath>() {
        Some(m) => m.as_str().to_string(),
        None => req.uri().path().chars().take(100).collect(),
    }
}

/// The router: API, samples and (if configured) the static site. No CORS layer: cross-origin pages cannot
/// read the answers.
pub fn app(state: AppState) -> Router {
    let x_request_id = HeaderName::from_static("x-request-id");
    let api = Router::new()
        .route("/api/v1/health", get(health))
        .route("/api/v1/models", get(models).post(uploads::upload))
        .route("/api/v1/models/{id}", get(model_one).delete(uploads::delete))
        .route("/api/v1/models/{id}/infer", post(infer::infer))
        .route("/api/v1/samples", get(samples::list))
        .route("/api/v1/samples/{file}", get(samples::file))
        .route("/api/v1/openapi.yaml", get(openapi::document))
        .route("/metrics", get(metrics::handler))
        .route("/api/v1/challenges", post(challenge::create))
        .route("/api/v1/challenges/{id}", get(challenge::info))
        .route("/api/v1/challenges/{id}/ciphertext", get(challenge::ciphertext))
        .route("/api/v1/challenges/{id}/answers", post(challenge::answer).get(challenge::answers))
        .merge(bfv::routes())
        .merge(crate::bfv_batch::routes())
        .route("/api/v1/training", get(jobs::info))
        .route("/api/v1/training/samples/mnist", get(training_data::mnist))
        .route("/api/v1/jobs", post(jobs::create))
        .route("/api/v1/jobs/{id}", get(jobs::status).delete(jobs::delete))
        .route("/api/v1/jobs/{id}/events", get(jobs::events))
        .route("/api/v1/jobs/{id}/model", get(jobs::model))
        .route("/api/{*rest}", axum::routing::any(api_not_found))
        .method_not_allowed_fallback(method_not_allowed)
        .layer(axum::middleware::from_fn_with_state(state.clone(), crate::idempotency::layer))
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
            .layer(SetResponseHeaderLayer::if_not_present(header::CACHE_CONTROL, HeaderValue::from_static("no-cache")))
            .layer(SetResponseHeaderLayer::overriding(
                header::CONTENT_SECURITY_POLICY,
                HeaderValue::from_static(CONTENT_SECURITY_POLICY),
            ))
            .layer(SetResponseHeaderLayer::overriding(header::X_FRAME_OPTIONS, HeaderValue::from_static("DENY")));
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
                    tracing::info_span!("request", id, method = %req.method(), path = %logged_path(req))
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

/// `GET /api/v1/models`: the bundled models (uploaded ones are not listed: their ids are capabilities).
async fn models(State(s): State<AppState>) -> impl IntoResponse {
    let mut list: Vec<serde_json::Value> =
        s.registry().iter().map(|m| serde_json::to_value(model_info(&s, m)).unwrap_or_default()).collect();
    if let Some(b) = s.bfv() {
        list.extend(b.model_entries());
    }
    axum::Json(serde_json::json!({ "models": list }))
}

async fn model_one(State(s): State<AppState>, ApiPath(id): ApiPath<String>) -> Result<Response, ApiError> {
    let m = uploads::find(&s, &id).await?;
    Ok(axum::Json(model_info(&s, &m)).into_response())
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
