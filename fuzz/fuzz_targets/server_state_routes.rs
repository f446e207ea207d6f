//! The server's stateful routes through `more_server::app` (tower `oneshot` in a tokio runtime): class
//! challenge answers, training-job uploads, the BFV key and inference routes and model uploads, on a state
//! with a teacher token and one challenge (created through the router at start), training jobs in a
//! temporary directory, the shipped BFV model and the shipped MNIST model (so uploads of the mnist task can
//! be accepted). No input makes the server panic or answer 5xx, and every answer except a
//! `204` is JSON.
//!
//! Input layout: byte 0 picks the route (below), byte 1 the `Content-Type`, byte 2 the `Content-Length`
//! (bits 0–2: honest, absent, one more, one less, huge), whether the teacher's token is sent (bit 6) and
//! whether an extra header `name: value` up to a NUL follows (bit 7); then the body. For the routes that
//! take an id from the input (an unknown challenge, BFV key deletion and inference, a job's status), the
//! id is the body up to a NUL.
//!
//! A job that is accepted (202) is read back and deleted at once, so jobs never pile up against the
//! limits, and so is an accepted model upload (after reading it back); answers to the challenge are kept (up to `max_answers`, then 409, which is fine). A panic
//! inside fhe.rs that more-bfv catches by design (its parsers run in `catch_unwind`) is let through; every
//! other panic, on any thread (the training thread too), goes to libFuzzer's hook and aborts.
#![no_main]

use std::collections::HashSet;
use std::path::PathBuf;
use std::sync::{Mutex, OnceLock};
use std::time::Duration;

use axum::Router;
use axum::body::Body;
use axum::http::{Request, StatusCode};
use libfuzzer_sys::fuzz_target;
use more_server::bfv::{BfvLimits, BfvService};
use more_server::jobs::{Jobs, TrainingLimits};
use more_server::uploads::UploadLimits;
use more_server::{AppState, ChallengeLimits, EngineConfig, Limits, Registry, TeacherToken, app};
use tower::ServiceExt;

const TOKEN: &str = "fuzz-teacher-token-0123456789";
const BFV_MODEL: &str = "mnist-bfv-square";

struct Setup {
    rt: tokio::runtime::Runtime,
    router: Router,
    challenge: String,
}

fn install_hook() {
    let libfuzzer_hook = std::panic::take_hook();
    let seen: Mutex<HashSet<String>> = Mutex::new(HashSet::new());
    std::panic::set_hook(Box::new(move |info| {
        let at = info.location().map(|l| format!("{}:{}", l.file(), l.line())).unwrap_or_default();
        if at.contains("/fhe-0.") || at.contains("/fhe-math-0.") || at.contains("/fhe-util-0.") {
            if seen.lock().map(|mut s| s.insert(at.clone())).unwrap_or(false) {
                eprintln!("fhe.rs panic caught by more-bfv at {at}");
            }
        } else {
            libfuzzer_hook(info);
        }
    }));
}

fn setup() -> &'static Setup {
    static SETUP: OnceLock<Setup> = OnceLock::new();
    SETUP.get_or_init(|| {
        install_hook();
        let rt = tokio::runtime::Builder::new_current_thread().enable_all().build().expect("runtime");
        let limits = Limits {
            max_batch: 4,
            max_body: 1 << 20,
            max_inflight: 8,
            request_timeout: Duration::from_secs(5),
            memory_budget: 256 << 20,
            ..Limits::default()
        };
        // One directory per process; the jobs in it are deleted as soon as they are accepted.
        let dir = std::env::temp_dir().join(format!("more-fuzz-jobs-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        let training = TrainingLimits {
            max_upload_bytes: 1 << 20,
            max_epochs: 2,
            max_batch_size: 8,
            max_wall: Duration::from_secs(2),
            ttl: Duration::from_secs(60),
            max_memory_bytes: 64 << 20,
            threads: 1,
            ..TrainingLimits::default()
        };
        let jobs = Jobs::open(&dir, training).expect("a jobs directory");
        let model = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../models/mnist-bfv-square.bfv.json");
        let bfv = BfvService::new(
            vec![more_bfv::BfvModel::load(&model).expect("the shipped BFV model")],
            BfvLimits { key_memory: 64 << 20, ..BfvLimits::default() },
        )
        .expect("the BFV service");
        let challenges = ChallengeLimits { max_answers: 20_000, ..ChallengeLimits::default() };
        let mut registry = Registry::new();
        let mnist = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../models/mnist-cnn-relu.morenn");
        registry.insert(more_nn::Model::load(&mnist).expect("the shipped MNIST model")).expect("registered");
        let state = AppState::new(
            registry,
            EngineConfig { workers: 1, queue: 8, max_batch_samples: 4, ..EngineConfig::default() },
            limits,
        )
        .with_challenges(TeacherToken::new(TOKEN).expect("token"), challenges)
        .with_jobs(jobs)
        .with_bfv(bfv)
        .with_uploads(UploadLimits::new(4, 1 << 20, Duration::from_secs(60)));
        let router = rt.block_on(async { app(state) });
        let req = Request::post("/api/v1/challenges")
            .header("authorization", format!("Bearer {TOKEN}"))
            .body(Body::empty())
            .unwrap();
        let (status, body) = send(&rt, &router, req);
        assert_eq!(status, StatusCode::CREATED, "creating the challenge");
        let created: serde_json::Value = serde_json::from_slice(&body).expect("JSON");
        let challenge = created["id"].as_str().expect("an id").to_string();
        Setup { rt, router, challenge }
    })
}

fn send(rt: &tokio::runtime::Runtime, router: &Router, req: Request<Body>) -> (StatusCode, axum::body::Bytes) {
    let path = req.uri().path().to_string();
    let res = rt.block_on(router.clone().oneshot(req)).expect("the router is infallible");
    let status = res.status();
    let ct = res.headers().get("content-type").and_then(|v| v.to_str().ok()).unwrap_or("").to_string();
    let body = rt.block_on(axum::body::to_bytes(res.into_body(), 16 << 20)).expect("answer body");
    assert!(status.is_success() || status.is_client_error(), "{status}: {}", String::from_utf8_lossy(&body));
    if status != StatusCode::NO_CONTENT {
        assert!(ct.starts_with("application/json"), "{status} {path:?} answered as {ct:?}");
        serde_json::from_slice::<serde_json::Value>(&body).expect("a JSON answer parses");
    }
    (status, body)
}

const TYPES: [Option<&str>; 8] = [
    Some("application/json"),
    Some("application/x-more-training-job"),
    Some("application/octet-stream"),
    None,
    Some("application/json; charset=utf-8"),
    Some("Application/Octet-Stream; x=y"),
    Some("\u{7f}"),
    Some("application/x-more-model"),
];

fn split_nul(data: &[u8]) -> (&[u8], &[u8]) {
    match data.iter().position(|&b| b == 0) {
        Some(i) => (&data[..i], &data[i + 1..]),
        None => (data, &[]),
    }
}

fuzz_target!(|data: &[u8]| {
    if data.len() < 3 {
        return;
    }
    let s = setup();
    let mut rest = &data[3..];
    let flags = data[2];
    let mut extra = None;
    if flags & 0x80 != 0 {
        let (h, r) = split_nul(rest);
        rest = r;
        extra = h.iter().position(|&b| b == b':').map(|c| (&h[..c], &h[c + 1..]));
    }
    let id_from_body = |rest: &mut &[u8]| {
        let (id, r) = split_nul(rest);
        *rest = r;
        String::from_utf8_lossy(id).into_owned()
    };
    let (method, path) = match data[0] % 12 {
        0 => ("POST", format!("/api/v1/challenges/{}/answers", s.challenge)),
        1 => ("POST", format!("/api/v1/challenges/{}/answers", id_from_body(&mut rest))),
        2 => ("GET", format!("/api/v1/challenges/{}/answers", s.challenge)),
        3 => ("POST", "/api/v1/jobs".to_string()),
        4 => ("GET", "/api/v1/training".to_string()),
        5 => ("POST", "/api/v1/bfv/keys".to_string()),
        6 => ("DELETE", format!("/api/v1/bfv/keys/{}", id_from_body(&mut rest))),
        7 => ("POST", format!("/api/v1/bfv/models/{BFV_MODEL}/infer?key_id={}", id_from_body(&mut rest))),
        8 => ("POST", "/api/v1/challenges".to_string()),
        10 => ("POST", "/api/v1/models".to_string()),
        11 => ("DELETE", format!("/api/v1/models/{}", id_from_body(&mut rest))),
        _ => ("GET", format!("/api/v1/jobs/{}", id_from_body(&mut rest))),
    };
    let Ok(uri) = path.parse::<axum::http::Uri>() else { return };
    let mut req = Request::builder().method(method).uri(uri);
    if let Some(ct) = TYPES[data[1] as usize % TYPES.len()] {
        req = req.header("content-type", ct);
    }
    if flags & 0x40 != 0 {
        req = req.header("authorization", format!("Bearer {TOKEN}"));
    }
    if let Some((name, value)) = extra {
        req = req.header(name, value);
    }
    match flags & 0x07 {
        0 => req = req.header("content-length", rest.len()),
        2 => req = req.header("content-length", rest.len() + 1),
        3 if !rest.is_empty() => req = req.header("content-length", rest.len() - 1),
        4 => req = req.header("content-length", u64::MAX),
        _ => {}
    }
    // An invalid header name or value is refused by the HTTP library before it reaches the server.
    let Ok(req) = req.body(Body::from(rest.to_vec())) else { return };
    let (status, body) = send(&s.rt, &s.router, req);
    // An accepted job: its status reads back, then it is deleted (cancelled if it has started training).
    if path == "/api/v1/jobs" && status == StatusCode::ACCEPTED {
        let job: serde_json::Value = serde_json::from_slice(&body).unwrap();
        let url = job["status_url"].as_str().expect("a status url").to_string();
        let (st, _) = send(&s.rt, &s.router, Request::get(&url).body(Body::empty()).unwrap());
        assert_eq!(st, StatusCode::OK);
        let (st, _) = send(&s.rt, &s.router, Request::delete(&url).body(Body::empty()).unwrap());
        assert_eq!(st, StatusCode::NO_CONTENT);
    }
    // An accepted model: it reads back, then it is deleted.
    if path == "/api/v1/models" && status == StatusCode::CREATED {
        let created: serde_json::Value = serde_json::from_slice(&body).unwrap();
        let id = created["id"].as_str().expect("an id").to_string();
        let (st, _) = send(&s.rt, &s.router, Request::get(format!("/api/v1/models/{id}")).body(Body::empty()).unwrap());
        assert_eq!(st, StatusCode::OK);
        let url = format!("/api/v1/models/{id}");
        let (st, _) = send(&s.rt, &s.router, Request::delete(&url).body(Body::empty()).unwrap());
        assert_eq!(st, StatusCode::NO_CONTENT);
    }
    if path == "/api/v1/bfv/keys" && status == StatusCode::CREATED {
        let keys: serde_json::Value = serde_json::from_slice(&body).unwrap();
        let url = format!("/api/v1/bfv/keys/{}", keys["key_id"].as_str().expect("a key id"));
        let (st, _) = send(&s.rt, &s.router, Request::delete(&url).body(Body::empty()).unwrap());
        assert_eq!(st, StatusCode::NO_CONTENT);
    }
});
