//! `GET /metrics`: the server's counters, gauges and histograms in the Prometheus text exposition format
//! (OpenMetrics flavour, which Prometheus scrapes natively), built on the `prometheus-client` crate.
//!
//! | metric | type | labels |
//! |---|---|---|
//! | `more_http_requests_total` | counter | `route` (the matched route pattern, `other` when none matched), `method`, `status` |
//! | `more_http_request_duration_seconds` | histogram | `route` — time to the response head |
//! | `more_http_requests_in_flight` | gauge | — every HTTP request being handled |
//! | `more_inference_requests_in_flight` | gauge | — admitted inference requests (reading, queued or computing) |
//! | `more_inference_queue_depth` | gauge | — jobs waiting for a worker |
//! | `more_inference_batch_samples` | histogram | `model` — samples per forward pass (merged batches) |
//! | `more_inference_compute_seconds` | histogram | `model` — duration of each forward pass |
//! | `more_memory_budget_bytes` / `more_memory_budget_in_use_bytes` | gauge | — the budget and what admitted requests reserve |
//! | `more_memory_bound_bytes` | gauge | — the bound on resident memory printed at start |
//! | `more_process_resident_memory_bytes` / `more_process_resident_memory_peak_bytes` | gauge | — `VmRSS` / `VmHWM` (Linux) |
//! | `more_models_loaded` | gauge | — |
//! | `more_inference_workers` | gauge | — |
//!
//! Labels only take values from fixed sets (route patterns, methods, statuses, model ids of the loaded
//! models), so a client cannot grow the number of series.

use std::sync::Arc;
use std::time::{Duration, Instant};

use axum::extract::{MatchedPath, Request, State};
use axum::http::{HeaderMap, HeaderValue, Method, header};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use prometheus_client::encoding::EncodeLabelSet;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::metrics::histogram::Histogram;
use prometheus_client::registry::Registry;

use crate::AppState;

/// Media type of the OpenMetrics text format.
pub const OPENMETRICS: &str = "application/openmetrics-text; version=1.0.0; charset=utf-8";
/// Media type of the classic Prometheus text format (the same text is valid in both).
pub const PROMETHEUS_TEXT: &str = "text/plain; version=0.0.4; charset=utf-8";

#[derive(Debug, Clone, Hash, PartialEq, Eq, EncodeLabelSet)]
struct RequestLabels {
    route: String,
    method: String,
    status: u16,
}

#[derive(Debug, Clone, Hash, PartialEq, Eq, EncodeLabelSet)]
struct RouteLabels {
    route: String,
}

#[derive(Debug, Clone, Hash, PartialEq, Eq, EncodeLabelSet)]
struct ModelLabels {
    model: String,
}

fn latency_histogram() -> Histogram {
    // 0.5 ms .. ~16 s
    Histogram::new(prometheus_client::metrics::histogram::exponential_buckets(0.0005, 2.0, 16))
}

fn batch_histogram() -> Histogram {
    Histogram::new([1.0, 2.0, 4.0, 8.0, 16.0, 32.0, 64.0, 128.0])
}

/// The server's metrics.
#[derive(Debug)]
pub struct Metrics {
    registry: Registry,
    requests: Family<RequestLabels, Counter>,
    latency: Family<RouteLabels, Histogram, fn() -> Histogram>,
    in_flight: Gauge,
    inference_in_flight: Gauge,
    queue_depth: Gauge,
    batch: Family<ModelLabels, Histogram, fn() -> Histogram>,
    compute: Family<ModelLabels, Histogram, fn() -> Histogram>,
    budget: Gauge,
    budget_in_use: Gauge,
    bound: Gauge,
    rss: Gauge,
    rss_peak: Gauge,
    models: Gauge,
    workers: Gauge,
}

impl Default for Metrics {
    fn default() -> Self {
        Self::new()
    }
}

impl Metrics {
    /// Registers every metric (all zero).
    pub fn new() -> Metrics {
        let mut m = Metrics {
            registry: Registry::with_prefix("more"),
            requests: Family::default(),
            latency: Family::new_with_constructor(latency_histogram),
            in_flight: Gauge::default(),
            inference_in_flight: Gauge::default(),
            queue_depth: Gauge::default(),
            batch: Family::new_with_constructor(batch_histogram),
            compute: Family::new_with_constructor(latency_histogram),
            budget: Gauge::default(),
            budget_in_use: Gauge::default(),
            bound: Gauge::default(),
            rss: Gauge::default(),
            rss_peak: Gauge::default(),
            models: Gauge::default(),
            workers: Gauge::default(),
        };
        let r = &mut m.registry;
        r.register("http_requests", "HTTP requests answered, by route, method and status", m.requests.clone());
        r.register(
            "http_request_duration_seconds",
            "Time from the request to the response head, by route",
            m.latency.clone(),
        );
        r.register("http_requests_in_flight", "HTTP requests being handled", m.in_flight.clone());
        r.register(
            "inference_requests_in_flight",
            "Admitted inference requests (reading, queued or computing)",
            m.inference_in_flight.clone(),
        );
        r.register("inference_queue_depth", "Inference jobs waiting for a worker", m.queue_depth.clone());
        r.register(
            "inference_batch_samples",
            "Samples per forward pass (requests merged into one batch)",
            m.batch.clone(),
        );
        r.register("inference_compute_seconds", "Duration of each forward pass", m.compute.clone());
        r.register("memory_budget_bytes", "Memory budget for admitted requests", m.budget.clone());
        r.register(
            "memory_budget_in_use_bytes",
            "Memory reserved by admitted requests (bodies and compute)",
            m.budget_in_use.clone(),
        );
        r.register("memory_bound_bytes", "Bound on the process's resident memory", m.bound.clone());
        r.register("process_resident_memory_bytes", "Resident set size (VmRSS)", m.rss.clone());
        r.register("process_resident_memory_peak_bytes", "Peak resident set size (VmHWM)", m.rss_peak.clone());
        r.register("models_loaded", "Models loaded", m.models.clone());
        r.register("inference_workers", "Inference worker threads", m.workers.clone());
        m
    }

    /// Records one finished forward pass of `samples` samples of `model`.
    pub fn observe_pass(&self, model: &str, samples: usize, compute: Duration) {
        let labels = ModelLabels { model: model.to_string() };
        self.batch.get_or_create(&labels).observe(samples as f64);
        self.compute.get_or_create(&labels).observe(compute.as_secs_f64());
    }

    /// Counts an admitted inference request until the guard is dropped.
    pub fn inference_started(self: &Arc<Self>) -> InFlight {
        self.inference_in_flight.inc();
        InFlight { gauge: self.inference_in_flight.clone() }
    }

    /// The registry's text, after refreshing the gauges that are read rather than counted.
    pub fn render(&self, state: &AppState) -> String {
        let gauge = |g: &Gauge, v: usize| {
            g.set(i64::try_from(v).unwrap_or(i64::MAX));
        };
        gauge(&self.queue_depth, state.engine().queued());
        gauge(&self.budget, state.budget().total());
        gauge(&self.budget_in_use, state.budget().in_use());
        gauge(&self.bound, state.memory_bound().total());
        gauge(&self.models, state.registry().len());
        gauge(&self.workers, state.engine().config().workers);
        if let Some((rss, peak)) = process_memory() {
            gauge(&self.rss, rss);
            gauge(&self.rss_peak, peak);
        }
        let mut out = String::new();
        prometheus_client::encoding::text::encode(&mut out, &self.registry).expect("writing to a String");
        out
    }
}

/// Decrements a gauge when dropped (a request answered, failed or cancelled).
#[derive(Debug)]
pub struct InFlight {
    gauge: Gauge<i64, std::sync::atomic::AtomicI64>,
}

impl Drop for InFlight {
    fn drop(&mut self) {
        self.gauge.dec();
    }
}

/// `VmRSS` and `VmHWM` of this process in bytes (Linux `/proc/self/status`).
pub fn process_memory() -> Option<(usize, usize)> {
    let status = std::fs::read_to_string("/proc/self/status").ok()?;
    let field = |name: &str| {
        status
            .lines()
            .find_map(|l| l.strip_prefix(name))
            .and_then(|v| v.trim().strip_suffix("kB").and_then(|n| n.trim().parse::<usize>().ok()).map(|kb| kb << 10))
    };
    Some((field("VmRSS:")?, field("VmHWM:")?))
}

/// Middleware counting every request by route, method and status, and timing it.
pub async fn track(State(state): State<AppState>, req: Request, next: Next) -> Response {
    let metrics = Arc::clone(state.metrics());
    let route = req.extensions().get::<MatchedPath>().map_or_else(|| "other".to_string(), |p| p.as_str().to_string());
    let method = known_method(req.method());
    metrics.in_flight.inc();
    let _guard = InFlight { gauge: metrics.in_flight.clone() };
    let start = Instant::now();
    let res = next.run(req).await;
    let labels = RequestLabels { route: route.clone(), method, status: res.status().as_u16() };
    metrics.requests.get_or_create(&labels).inc();
    metrics.latency.get_or_create(&RouteLabels { route }).observe(start.elapsed().as_secs_f64());
    res
}

fn known_method(m: &Method) -> String {
    match *m {
        Method::GET | Method::POST | Method::PUT | Method::DELETE | Method::HEAD | Method::OPTIONS | Method::PATCH => {
            m.as_str().to_string()
        }
        _ => "other".to_string(),
    }
}

/// `GET /metrics`.
pub async fn handler(State(state): State<AppState>, headers: HeaderMap) -> Response {
    let text = state.metrics().render(&state);
    let accept = headers.get(header::ACCEPT).and_then(|v| v.to_str().ok()).unwrap_or("");
    let ct = if accept.contains("application/openmetrics-text") { OPENMETRICS } else { PROMETHEUS_TEXT };
    let mut res = text.into_response();
    res.headers_mut().insert(header::CONTENT_TYPE, HeaderValue::from_static(ct));
    res
}
