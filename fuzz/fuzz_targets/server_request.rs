//! The server's request path: arbitrary method, path, headers and body sent to `more_server::app` (one
//! `tower::ServiceExt::oneshot` per input inside a tokio runtime). No input makes it panic or answer 500,
//! and every answer is either a wire-format tensor (200 on inference) or a JSON error / page.
//!
//! Input layout: byte 0 picks the method, byte 1 the path (a fixed list, or the next bytes up to a NUL),
//! byte 2 the `Content-Type`, byte 3 the `Content-Length` (honest, absent, one off, huge), then an optional
//! extra header `name: value` up to a NUL, then the body.
#![no_main]

use std::sync::OnceLock;
use std::time::Duration;

use axum::Router;
use axum::body::Body;
use axum::http::{Request, StatusCode};
use libfuzzer_sys::fuzz_target;
use more_nn::{ElementFunction, Layer, LayerSpec, Model, ModelMeta};
use more_server::{AppState, EngineConfig, Limits, Registry, app};
use ndarray::{Array1, Array2};
use tower::ServiceExt;

const ID: &str = "fuzz";

fn setup() -> &'static (tokio::runtime::Runtime, Router) {
    static APP: OnceLock<(tokio::runtime::Runtime, Router)> = OnceLock::new();
    APP.get_or_init(|| {
        let rt = tokio::runtime::Builder::new_current_thread().enable_all().build().expect("runtime");
        let w = Array2::from_shape_fn((4, 3), |(i, j)| (i as f32 - 1.5) * 0.3 + j as f32 * 0.1);
        let dense = LayerSpec::Dense { inputs: 4, outputs: 3 };
        let layers = vec![
            Layer::new(dense, vec![w.into_dyn(), Array1::from(vec![0.1, -0.2, 0.05]).into_dyn()]).expect("dense"),
            Layer::parameter_free(LayerSpec::Activation { function: ElementFunction::Relu }).expect("relu"),
        ];
        let model = Model::new(ModelMeta::new(ID, "fuzz"), &[4], layers).expect("model");
        let mut registry = Registry::new();
        registry.insert(model).expect("one model");
        let limits = Limits {
            max_batch: 4,
            max_body: 4096,
            max_inflight: 8,
            request_timeout: Duration::from_secs(5),
            memory_budget: 1 << 20,
            ..Limits::default()
        };
        let state = AppState::new(registry, EngineConfig { workers: 1, queue: 8, max_batch_samples: 4, ..EngineConfig::default() }, limits);
        let router = rt.block_on(async { app(state) });
        (rt, router)
    })
}

const METHODS: [&str; 6] = ["GET", "POST", "PUT", "DELETE", "HEAD", "OPTIONS"];
const PATHS: [&str; 9] = [
    "/api/v1/models/fuzz/infer",
    "/api/v1/health",
    "/api/v1/models",
    "/api/v1/models/fuzz",
    "/api/v1/samples",
    "/api/v1/samples/x.png",
    "/api/v1/models/nope/infer",
    "/metrics",
    "/",
];
const TYPES: [Option<&str>; 5] = [
    Some("application/x-more-tensor"),
    None,
    Some("application/json"),
    Some("Application/X-More-Tensor; charset=binary"),
    Some("\u{7f}"),
];

fn split_nul(data: &[u8]) -> (&[u8], &[u8]) {
    match data.iter().position(|&b| b == 0) {
        Some(i) => (&data[..i], &data[i + 1..]),
        None => (data, &[]),
    }
}

fuzz_target!(|data: &[u8]| {
    if data.len() < 4 {
        return;
    }
    let (rt, router) = setup();
    let method = METHODS[data[0] as usize % METHODS.len()];
    let mut rest = &data[4..];
    let path = if (data[1] as usize) < PATHS.len() {
        PATHS[data[1] as usize].to_string()
    } else {
        let (p, r) = split_nul(rest);
        rest = r;
        format!("/{}", String::from_utf8_lossy(p))
    };
    let mut req = Request::builder().method(method);
    let Ok(uri) = path.parse::<axum::http::Uri>() else { return };
    req = req.uri(uri);
    if let Some(ct) = TYPES[data[2] as usize % TYPES.len()] {
        req = req.header("content-type", ct);
    }
    let extra = data[3] & 0x80 != 0;
    if extra {
        let (h, r) = split_nul(rest);
        rest = r;
        if let Some(colon) = h.iter().position(|&b| b == b':') {
            req = req.header(&h[..colon], &h[colon + 1..]);
        }
    }
    match data[3] & 0x7f {
        0..=31 => req = req.header("content-length", rest.len()),
        32..=47 => req = req.header("content-length", rest.len() + 1),
        48..=63 if !rest.is_empty() => req = req.header("content-length", rest.len() - 1),
        64..=79 => req = req.header("content-length", u64::MAX),
        _ => {}
    }
    // An invalid header name or value is refused by the HTTP library before it reaches the server.
    let Ok(req) = req.body(Body::from(rest.to_vec())) else { return };
    let res = rt.block_on(router.clone().oneshot(req)).expect("the router is infallible");
    let status = res.status();
    assert_ne!(status, StatusCode::INTERNAL_SERVER_ERROR, "{method} {path}: 500");
    let ct = res.headers().get("content-type").and_then(|v| v.to_str().ok()).unwrap_or("").to_string();
    let body = rt.block_on(axum::body::to_bytes(res.into_body(), 1 << 20)).expect("answer body");
    if status == StatusCode::OK && ct == "application/x-more-tensor" {
        more_core::decode::<f32>(&body, 1 << 20).expect("a 200 inference answer is a tensor");
    } else if !status.is_success() && method != "HEAD" {
        assert!(ct.starts_with("application/json"), "{status} answered as {ct:?}");
    }
});
