//! The API through `tower::ServiceExt::oneshot`: round trips that decrypt to the plaintext model's answer,
//! every error status with its JSON body, limits, the static site and the sample listing.

mod common;

use std::time::Duration;

use axum::Router;
use axum::body::{Body, Bytes};
use axum::http::{Request, StatusCode, header};
use more_core::codec::MEDIA_TYPE;
use more_core::{KeyOptions, SecretKey};
use more_server::{EngineConfig, Limits, app};

use common::*;

fn post(id: &str, content_type: Option<&str>, body: Vec<u8>) -> Request<Body> {
    let mut b = Request::post(format!("/api/v1/models/{id}/infer"));
    if let Some(ct) = content_type {
        b = b.header(header::CONTENT_TYPE, ct);
    }
    b.header(header::CONTENT_LENGTH, body.len()).body(Body::from(body)).unwrap()
}

/// Encrypts `x`, posts it, decrypts the answer and compares with the plaintext model.
async fn check_round_trip(router: &Router, shape: &[usize], seed: u64) -> Answer {
    let key = SecretKey::from_seed(seed, KeyOptions::default()).unwrap();
    let x = input(shape, seed);
    let ct = key.encrypt_tensor::<f32>(&x.view()).unwrap();
    let reply = send(router, post(ID, Some(MEDIA_TYPE), more_core::encode(&ct))).await;
    assert_eq!(reply.status, StatusCode::OK, "{:?}", reply.body);
    assert_eq!(reply.headers[header::CONTENT_TYPE], MEDIA_TYPE);
    let out = more_core::decode::<f32>(&reply.body, 1 << 20).unwrap();
    let got = key.decrypt_tensor(&out);
    let model = test_model(7);
    let batched = shape.len() == INPUT.len() + 1;
    let xb = if batched { x.clone() } else { x.clone().insert_axis(ndarray::Axis(0)) };
    let want = model.forward_plain(xb.view()).unwrap();
    let want = if batched { want } else { want.index_axis_move(ndarray::Axis(0), 0) };
    assert_eq!(got.shape(), want.shape());
    for (g, w) in got.iter().zip(want.iter()) {
        assert!((g - w).abs() < 1e-3, "decrypted {g} vs plaintext {w}");
    }
    reply
}

#[tokio::test]
async fn encrypted_round_trip_matches_plaintext_model() {
    let router = router();
    let reply = check_round_trip(&router, &INPUT, 1).await;
    let timing = reply.headers["server-timing"].to_str().unwrap();
    for part in ["decode;dur=", "compute;dur=", "encode;dur="] {
        assert!(timing.contains(part), "{timing}");
    }
    assert!(reply.headers.contains_key("x-request-id"));
    check_round_trip(&router, &[5, 1, 8, 8], 2).await;
    // Media type parameters are allowed.
    let key = SecretKey::from_seed(3, KeyOptions::default()).unwrap();
    let ct = key.encrypt_tensor::<f32>(&input(&INPUT, 3).view()).unwrap();
    let r = send(&router, post(ID, Some("application/x-more-tensor; v=1"), more_core::encode(&ct))).await;
    assert_eq!(r.status, StatusCode::OK);
}

#[tokio::test]
async fn concurrent_requests_are_batched_and_each_gets_its_own_answer() {
    let router = router();
    let tasks: Vec<_> = (0..24)
        .map(|i| {
            let router = router.clone();
            tokio::spawn(async move {
                let shape: Vec<usize> = if i % 3 == 0 { vec![2, 1, 8, 8] } else { INPUT.to_vec() };
                check_round_trip(&router, &shape, 100 + i).await;
            })
        })
        .collect();
    for t in tasks {
        t.await.unwrap();
    }
}

#[tokio::test]
async fn health_models_and_samples() {
    let router = router();
    let h = send(&router, get("/api/v1/health")).await;
    assert_eq!(h.status, StatusCode::OK);
    assert_eq!(h.json()["status"], "ok");
    assert_eq!(h.json()["models"], 1);

    let m = send(&router, get("/api/v1/models")).await;
    assert_eq!(m.status, StatusCode::OK);
    let list = m.json()["models"].as_array().unwrap().clone();
    assert_eq!(list.len(), 1);
    let model = &list[0];
    assert_eq!(model["id"], ID);
    assert_eq!(model["input_shape"], serde_json::json!([1, 8, 8]));
    assert_eq!(model["dtype"].as_str().map(str::to_ascii_lowercase).as_deref(), Some("f32"));
    assert_eq!(model["output_kind"], "logits");
    assert_eq!(model["labels"], serde_json::json!(["a", "b", "c"]));
    assert_eq!(model["ring_only"], false);
    assert_eq!(model["infer_url"], format!("/api/v1/models/{ID}/infer"));
    let ops = model["operations"].as_array().unwrap();
    assert!(ops.iter().any(|o| o["name"] == "relu" && o["ring_only"] == false), "{ops:?}");
    assert!(ops.iter().any(|o| o["name"] == "conv2d" && o["ring_only"] == true), "{ops:?}");
    assert!(model["preprocessing"]["scale"].is_number());
    assert!(model["metrics"].is_object());
    assert_eq!(send(&router, get(&format!("/api/v1/models/{ID}"))).await.json()["id"], ID);

    let s = send(&router, get("/api/v1/samples")).await;
    assert_eq!(s.status, StatusCode::OK);
    let samples = s.json()["samples"].as_array().unwrap().clone();
    assert!(!samples.is_empty(), "missing {}: the shared angiogram samples", samples_dir().display());
    let first = &samples[0];
    assert!(["RCA", "LCA"].contains(&first["label"].as_str().unwrap()), "{first}");
    let img = send(&router, get(first["url"].as_str().unwrap())).await;
    assert_eq!(img.status, StatusCode::OK);
    assert_eq!(img.headers[header::CONTENT_TYPE], "image/png");
    assert_eq!(&img.body[1..4], b"PNG");
    for bad in ["/api/v1/samples/..%2F..%2Fetc%2Fpasswd", "/api/v1/samples/labels.csv", "/api/v1/samples/nope.png"] {
        let r = send(&router, get(bad)).await;
        assert_eq!(r.status, StatusCode::NOT_FOUND, "{bad}");
        assert_eq!(r.error(), "not_found");
    }
}

/// A valid encrypted body of this shape, with `f` applied to the raw bytes.
fn body(shape: &[usize], seed: u64) -> Vec<u8> {
    let key = SecretKey::from_seed(seed, KeyOptions::default()).unwrap();
    more_core::encode(&key.encrypt_tensor::<f32>(&input(shape, seed).view()).unwrap())
}

fn header_only(dtype: u8, dims: &[u32]) -> Vec<u8> {
    let mut b = vec![b'M', b'O', b'R', b'E', 1, dtype, dims.len() as u8, 0];
    for d in dims {
        b.extend_from_slice(&d.to_le_bytes());
    }
    b
}

#[tokio::test]
async fn every_error_has_its_status_and_json_body() {
    let router = router();
    let ok = body(&INPUT, 5);
    let mut nan = ok.clone();
    let at = nan.len() - 4 * 10;
    nan[at..at + 4].copy_from_slice(&f32::NAN.to_le_bytes());
    let mut inf = ok.clone();
    inf[20..24].copy_from_slice(&f32::INFINITY.to_le_bytes());
    let f64_body = {
        let key = SecretKey::from_seed(6, KeyOptions::default()).unwrap();
        let x = input(&INPUT, 6).mapv(f64::from);
        more_core::encode(&key.encrypt_tensor::<f64>(&x.view()).unwrap())
    };
    let mut huge = header_only(1, &[u32::MAX, u32::MAX, 28, 28]);
    huge.extend_from_slice(&[0; 64]);
    let cases: Vec<(&str, Request<Body>, StatusCode, &str)> = vec![
        ("unknown model", post("nope", Some(MEDIA_TYPE), ok.clone()), StatusCode::NOT_FOUND, "unknown_model"),
        ("unknown route", get("/api/v1/nothing"), StatusCode::NOT_FOUND, "not_found"),
        ("unknown page", get("/nothing.html"), StatusCode::NOT_FOUND, "not_found"),
        (
            "GET on infer",
            get(&format!("/api/v1/models/{ID}/infer")),
            StatusCode::METHOD_NOT_ALLOWED,
            "method_not_allowed",
        ),
        ("no content type", post(ID, None, ok.clone()), StatusCode::UNSUPPORTED_MEDIA_TYPE, "unsupported_media_type"),
        (
            "json content type",
            post(ID, Some("application/json"), ok.clone()),
            StatusCode::UNSUPPORTED_MEDIA_TYPE,
            "unsupported_media_type",
        ),
        ("random bytes", post(ID, Some(MEDIA_TYPE), vec![7; 100]), StatusCode::BAD_REQUEST, "malformed"),
        ("empty", post(ID, Some(MEDIA_TYPE), vec![]), StatusCode::BAD_REQUEST, "malformed"),
        ("truncated", post(ID, Some(MEDIA_TYPE), ok[..ok.len() - 3].to_vec()), StatusCode::BAD_REQUEST, "malformed"),
        ("trailing bytes", post(ID, Some(MEDIA_TYPE), [&ok[..], &[0]].concat()), StatusCode::BAD_REQUEST, "malformed"),
        ("huge declared shape", post(ID, Some(MEDIA_TYPE), huge), StatusCode::PAYLOAD_TOO_LARGE, "too_large"),
        ("body over limit", post(ID, Some(MEDIA_TYPE), vec![0; 2 << 20]), StatusCode::PAYLOAD_TOO_LARGE, "too_large"),
        (
            "wrong shape",
            post(ID, Some(MEDIA_TYPE), body(&[1, 9, 8], 1)),
            StatusCode::UNPROCESSABLE_ENTITY,
            "wrong_shape",
        ),
        (
            "batch over limit",
            post(ID, Some(MEDIA_TYPE), body(&[9, 1, 8, 8], 1)),
            StatusCode::PAYLOAD_TOO_LARGE,
            "too_large",
        ),
        ("NaN", post(ID, Some(MEDIA_TYPE), nan), StatusCode::UNPROCESSABLE_ENTITY, "non_finite"),
        ("infinity", post(ID, Some(MEDIA_TYPE), inf), StatusCode::UNPROCESSABLE_ENTITY, "non_finite"),
        ("f64 planes", post(ID, Some(MEDIA_TYPE), f64_body), StatusCode::UNPROCESSABLE_ENTITY, "wrong_dtype"),
    ];
    for (name, req, status, code) in cases {
        let r = send(&router, req).await;
        assert_eq!(r.status, status, "{name}: {:?}", r.body);
        assert_eq!(r.headers[header::CONTENT_TYPE], "application/json", "{name}");
        assert_eq!(r.error(), code, "{name}");
    }
    // Still answers correctly.
    check_round_trip(&router, &INPUT, 9).await;
}

#[tokio::test]
async fn body_limit_follows_max_batch() {
    let limits = Limits {
        max_batch: 2,
        max_body: 1 << 20,
        max_inflight: 8,
        request_timeout: Duration::from_secs(10),
        ..Limits::default()
    };
    let router =
        app(state_with(EngineConfig { workers: 1, queue: 8, max_batch_samples: 4, ..EngineConfig::default() }, limits));
    let r = send(&router, post(ID, Some(MEDIA_TYPE), body(&[3, 1, 8, 8], 1))).await;
    assert_eq!(r.status, StatusCode::PAYLOAD_TOO_LARGE);
    let r = send(&router, post(ID, Some(MEDIA_TYPE), body(&[2, 1, 8, 8], 1))).await;
    assert_eq!(r.status, StatusCode::OK);
}

#[tokio::test]
async fn full_queue_is_429_and_admission_limit_is_503() {
    // One worker, a queue of one: a burst must overflow the queue.
    let limits = Limits {
        max_batch: 8,
        max_body: 1 << 20,
        max_inflight: 1000,
        request_timeout: Duration::from_secs(30),
        ..Limits::default()
    };
    let router =
        app(state_with(EngineConfig { workers: 1, queue: 1, max_batch_samples: 1, ..EngineConfig::default() }, limits));
    let mut saw_429 = false;
    for round in 0..10 {
        let tasks: Vec<_> = (0..64)
            .map(|i| {
                let router = router.clone();
                let b = body(&[8, 1, 8, 8], round * 100 + i);
                tokio::spawn(async move { send(&router, post(ID, Some(MEDIA_TYPE), b)).await })
            })
            .collect();
        for t in tasks {
            let r = t.await.unwrap();
            match r.status {
                StatusCode::OK => {}
                StatusCode::TOO_MANY_REQUESTS => {
                    assert_eq!(r.error(), "queue_full");
                    assert_eq!(r.headers[header::RETRY_AFTER], "1");
                    saw_429 = true;
                }
                s => panic!("unexpected {s}"),
            }
        }
        if saw_429 {
            break;
        }
    }
    assert!(saw_429, "a burst of 64 requests never overflowed a queue of 1");

    // Admission: one request in flight (its body never ends), the next is 503.
    let limits = Limits {
        max_batch: 8,
        max_body: 1 << 20,
        max_inflight: 1,
        request_timeout: Duration::from_secs(30),
        ..Limits::default()
    };
    let router =
        app(state_with(EngineConfig { workers: 1, queue: 4, max_batch_samples: 1, ..EngineConfig::default() }, limits));
    let (tx, rx) = tokio::sync::mpsc::channel::<Result<Bytes, std::io::Error>>(1);
    tx.send(Ok(Bytes::from_static(b"MORE"))).await.unwrap();
    let stream = futures_util::stream::unfold(rx, |mut rx| async move { rx.recv().await.map(|x| (x, rx)) });
    let stalled = Request::post(format!("/api/v1/models/{ID}/infer"))
        .header(header::CONTENT_TYPE, MEDIA_TYPE)
        .body(Body::from_stream(stream))
        .unwrap();
    let first = tokio::spawn({
        let router = router.clone();
        async move { send(&router, stalled).await }
    });
    // Let the stalled request take the only slot.
    tokio::time::sleep(Duration::from_millis(50)).await;
    let mut saw_503 = false;
    for _ in 0..200 {
        assert!(!first.is_finished(), "the stalled request must still hold its slot");
        let r = send(&router, post(ID, Some(MEDIA_TYPE), body(&INPUT, 1))).await;
        if r.status == StatusCode::SERVICE_UNAVAILABLE {
            assert_eq!(r.error(), "overloaded");
            saw_503 = true;
            break;
        }
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
    assert!(saw_503);
    drop(tx); // the stalled body ends after 4 bytes: malformed
    assert_eq!(first.await.unwrap().status, StatusCode::BAD_REQUEST);
    check_round_trip(&router, &INPUT, 4).await;
}

#[tokio::test]
async fn slow_body_times_out() {
    let limits = Limits {
        max_batch: 8,
        max_body: 1 << 20,
        max_inflight: 8,
        request_timeout: Duration::from_millis(200),
        ..Limits::default()
    };
    let router =
        app(state_with(EngineConfig { workers: 1, queue: 4, max_batch_samples: 1, ..EngineConfig::default() }, limits));
    let (tx, rx) = tokio::sync::mpsc::channel::<Result<Bytes, std::io::Error>>(1);
    tx.send(Ok(Bytes::from_static(b"MORE"))).await.unwrap();
    let stream = futures_util::stream::unfold(rx, |mut rx| async move { rx.recv().await.map(|x| (x, rx)) });
    let req = Request::post(format!("/api/v1/models/{ID}/infer"))
        .header(header::CONTENT_TYPE, MEDIA_TYPE)
        .body(Body::from_stream(stream))
        .unwrap();
    let r = send(&router, req).await;
    assert_eq!(r.status, StatusCode::REQUEST_TIMEOUT);
    assert_eq!(r.error(), "timeout");
    drop(tx);
}

#[tokio::test]
async fn static_site_mime_compression_cache_and_no_cors() {
    let dir = std::env::temp_dir().join(format!("more-server-web-{}", std::process::id()));
    std::fs::create_dir_all(dir.join("web/pkg")).unwrap();
    std::fs::write(dir.join("index.html"), "<!doctype html><title>t</title>".repeat(100)).unwrap();
    std::fs::write(dir.join("web/app.js"), "export const x = 1;\n".repeat(500)).unwrap();
    std::fs::write(dir.join("web/pkg/m.wasm"), b"\0asm\x01\0\0\0".repeat(200)).unwrap();
    std::fs::write(dir.join("secret.txt"), "not served").unwrap();
    let limits = Limits::default();
    let router =
        app(state_with(EngineConfig { workers: 1, queue: 4, max_batch_samples: 1, ..EngineConfig::default() }, limits)
            .with_web(&dir));

    let r = send(&router, get("/")).await;
    assert_eq!(r.status, StatusCode::OK);
    assert!(r.headers[header::CONTENT_TYPE].to_str().unwrap().starts_with("text/html"));
    assert_eq!(r.headers[header::CACHE_CONTROL], "no-cache");
    assert!(!r.headers.contains_key(header::ACCESS_CONTROL_ALLOW_ORIGIN));
    // Pages and their scripts carry the site's CSP (no inline scripts, no framing) and X-Frame-Options.
    for path in ["/", "/index.html", "/web/app.js"] {
        let r = send(&router, get(path)).await;
        let csp = r.headers[header::CONTENT_SECURITY_POLICY].to_str().unwrap();
        assert_eq!(csp, more_server::router::CONTENT_SECURITY_POLICY, "{path}");
        assert!(csp.contains("frame-ancestors 'none'") && csp.contains("script-src 'self' 'wasm-unsafe-eval';"));
        let script = csp.split(';').find(|d| d.trim().starts_with("script-src")).unwrap();
        assert!(!script.split_whitespace().any(|t| t == "'unsafe-inline'" || t == "'unsafe-eval'"), "{script}");
        assert_eq!(r.headers[header::X_FRAME_OPTIONS], "DENY", "{path}");
    }

    let wasm = send(&router, get("/web/pkg/m.wasm")).await;
    assert_eq!(wasm.status, StatusCode::OK);
    assert_eq!(wasm.headers[header::CONTENT_TYPE], "application/wasm");

    for enc in ["gzip", "br"] {
        let req = Request::get("/web/app.js").header(header::ACCEPT_ENCODING, enc).body(Body::empty()).unwrap();
        let r = send(&router, req).await;
        assert_eq!(r.status, StatusCode::OK);
        assert_eq!(r.headers[header::CONTENT_ENCODING], enc);
        assert!(r.body.len() < 2000, "{enc}: {} bytes", r.body.len());
    }
    // Only index.html and web/ are served, never the rest of the directory.
    assert_eq!(send(&router, get("/secret.txt")).await.status, StatusCode::NOT_FOUND);
    assert_eq!(send(&router, get("/web/../secret.txt")).await.status, StatusCode::NOT_FOUND);
    // API answers are not cached and carry no CORS header even when asked from another origin.
    let req =
        Request::get("/api/v1/models").header(header::ORIGIN, "https://evil.example").body(Body::empty()).unwrap();
    let r = send(&router, req).await;
    assert_eq!(r.headers[header::CACHE_CONTROL], "no-store");
    assert!(!r.headers.contains_key(header::ACCESS_CONTROL_ALLOW_ORIGIN));
    std::fs::remove_dir_all(&dir).ok();
}

#[tokio::test]
async fn memory_budget_refuses_what_does_not_fit() {
    // 64 KiB budget: one sample (1,040 bytes, reserving 4x plus its forward pass, about 20 KiB) fits, a batch
    // of 8 (8,216 bytes: about 160 KiB) does not.
    let limits = Limits { memory_budget: 64 << 10, ..Limits::default() };
    let state =
        state_with(EngineConfig { workers: 1, queue: 4, max_batch_samples: 1, ..EngineConfig::default() }, limits);
    let model = state.registry().get(ID).unwrap().clone();
    assert!(state.reservation(&model, 1040) < 64 << 10);
    assert!(state.reservation(&model, 8216) > 64 << 10);
    let router = app(state);
    let r = send(&router, post(ID, Some(MEDIA_TYPE), body(&[8, 1, 8, 8], 1))).await;
    assert_eq!(r.status, StatusCode::SERVICE_UNAVAILABLE);
    assert_eq!(r.error(), "overloaded");
    check_round_trip(&router, &INPUT, 2).await;
}

/// A well-formed body whose every element is the rotation `[[0, 1], [-1, 0]]`: eigenvalues ±i, not a
/// ciphertext of any real number, so the model's ReLU (spectral formula) cannot evaluate it.
fn rotation_body(shape: &[usize]) -> Vec<u8> {
    let n: usize = shape.iter().product();
    let mut full = vec![4];
    full.extend_from_slice(shape);
    let mut data = Vec::with_capacity(4 * n);
    for plane in [0f32, 1.0, -1.0, 0.0] {
        data.extend(std::iter::repeat_n(plane, n));
    }
    let t =
        more_core::EncryptedTensor::from_data(ndarray::ArrayD::from_shape_vec(ndarray::IxDyn(&full), data).unwrap())
            .unwrap();
    more_core::encode(&t)
}

#[tokio::test]
async fn invalid_ciphertext_is_422_and_does_not_fail_batched_neighbours() {
    let router = router();
    let r = send(&router, post(ID, Some(MEDIA_TYPE), rotation_body(&INPUT))).await;
    assert_eq!(r.status, StatusCode::UNPROCESSABLE_ENTITY, "{:?}", r.body);
    assert_eq!(r.error(), "invalid_ciphertext");
    // Mixed with valid requests that may be merged into the same forward pass: only the bad one fails.
    let tasks: Vec<_> = (0..16)
        .map(|i| {
            let router = router.clone();
            tokio::spawn(async move {
                if i % 4 == 0 {
                    let r = send(&router, post(ID, Some(MEDIA_TYPE), rotation_body(&INPUT))).await;
                    assert_eq!(r.status, StatusCode::UNPROCESSABLE_ENTITY);
                } else {
                    check_round_trip(&router, &INPUT, 500 + i).await;
                }
            })
        })
        .collect();
    for t in tasks {
        t.await.unwrap();
    }
}

#[tokio::test]
async fn openapi_document_is_served_and_every_path_in_it_is_routed() {
    let router = router();
    let r = send(&router, get("/api/v1/openapi.yaml")).await;
    assert_eq!(r.status, StatusCode::OK);
    assert_eq!(r.headers[header::CONTENT_TYPE], "application/yaml");
    let served = std::str::from_utf8(&r.body).unwrap();
    let file = std::fs::read_to_string(concat!(env!("CARGO_MANIFEST_DIR"), "/../../docs/openapi.yaml")).unwrap();
    assert_eq!(served, file, "the binary serves docs/openapi.yaml as it is in the repository");

    // Every path the document lists is a route of the server, and docs/api.md describes it.
    let api_md = std::fs::read_to_string(concat!(env!("CARGO_MANIFEST_DIR"), "/../../docs/api.md")).unwrap();
    // Each path with the first method the document gives it (the line after the path: `    get:`).
    let lines: Vec<&str> = served.lines().collect();
    let paths: Vec<(&str, String)> = lines
        .iter()
        .enumerate()
        .filter_map(|(i, l)| {
            let path = l.strip_prefix("  /api/")?.strip_suffix(':')?;
            let method = lines.get(i + 1)?.trim().strip_suffix(':')?.to_ascii_uppercase();
            Some((path, method))
        })
        .collect();
    assert!(paths.len() >= 7, "{paths:?}");
    for (path, method) in paths {
        let uri = format!("/api/{path}").replace("{id}", ID).replace("{name}", "nope.png").replace("{key_id}", "nope");
        let req = Request::builder().method(method.as_str()).uri(&uri).body(Body::empty()).unwrap();
        let r = send(&router, req).await;
        let unrouted =
            r.status == StatusCode::NOT_FOUND && r.json()["message"].as_str().unwrap().contains("no API route");
        assert!(!unrouted && r.status != StatusCode::METHOD_NOT_ALLOWED, "{method} {uri}: {}", r.status);
        let heading = format!("/api/{path}`");
        assert!(api_md.contains(&heading), "docs/api.md does not describe /api/{path}");
    }
}

#[tokio::test]
async fn dtype_and_shape_are_refused_as_soon_as_the_header_arrives() {
    let router = router();
    for (dtype, dims, status, code) in [
        (2u8, vec![1u32, 8, 8], StatusCode::UNPROCESSABLE_ENTITY, "wrong_dtype"),
        (1, vec![1, 9, 8], StatusCode::UNPROCESSABLE_ENTITY, "wrong_shape"),
        (1, vec![u32::MAX, 1, 8, 8], StatusCode::PAYLOAD_TOO_LARGE, "too_large"),
    ] {
        // Only the header is sent and the body never ends: the answer can only come from the header.
        let (tx, rx) = tokio::sync::mpsc::channel::<Result<Bytes, std::io::Error>>(1);
        tx.send(Ok(Bytes::from(header_only(dtype, &dims)))).await.unwrap();
        let stream = futures_util::stream::unfold(rx, |mut rx| async move { rx.recv().await.map(|x| (x, rx)) });
        let req = Request::post(format!("/api/v1/models/{ID}/infer"))
            .header(header::CONTENT_TYPE, MEDIA_TYPE)
            .body(Body::from_stream(stream))
            .unwrap();
        let r = tokio::time::timeout(Duration::from_secs(5), send(&router, req))
            .await
            .unwrap_or_else(|_| panic!("{code}: no answer before the body ended"));
        assert_eq!(r.status, status, "{code}: {:?}", r.body);
        assert_eq!(r.error(), code);
        drop(tx);
    }
}

/// Found by fuzzing the request path: a model id whose percent-encoding is not UTF-8 was answered by the
/// router's plain-text 400; every API error is JSON.
#[tokio::test]
async fn undecodable_ids_are_a_json_400_on_every_route() {
    let router = router();
    for (method, uri) in [
        ("GET", "/api/v1/models/fuz%f2%22"),
        ("POST", "/api/v1/models/%ff/infer"),
        ("GET", "/api/v1/samples/%c3%28.png"),
        ("GET", "/api/v1/challenges/%ff"),
        ("GET", "/api/v1/challenges/%ff/ciphertext"),
        ("POST", "/api/v1/challenges/%ff/answers"),
        ("GET", "/api/v1/challenges/%ff/answers"),
        ("GET", "/api/v1/jobs/%ff"),
        ("DELETE", "/api/v1/jobs/%ff"),
        ("GET", "/api/v1/jobs/%ff/events"),
        ("GET", "/api/v1/jobs/%ff/model"),
        ("DELETE", "/api/v1/bfv/keys/001122334899a%bbccddeeff"),
        ("POST", "/api/v1/bfv/models/%ff/infer"),
    ] {
        let req = Request::builder().method(method).uri(uri).body(Body::empty()).unwrap();
        let r = send(&router, req).await;
        assert_eq!(r.status, StatusCode::BAD_REQUEST, "{uri}");
        assert_eq!(r.error(), "bad_path", "{uri}");
        assert!(r.headers[header::CONTENT_TYPE].to_str().unwrap().starts_with("application/json"), "{uri}");
    }
}

/// The challenge routes through the router: the published ciphertext is the phrase the teacher's list names,
/// rendered by `glyphs`, under a key nobody holds — more-core's ciphertext-only attack reads it back, and
/// what it reads is accepted as the answer.
#[tokio::test]
async fn a_challenge_publishes_its_rendered_phrase_as_a_ciphertext_only() {
    use more_core::attack::{DataPrior, ciphertext_only};
    use more_server::{ChallengeLimits, TeacherToken, glyphs};
    let token = "router-test-teacher-token-42";
    let bearer = format!("Bearer {token}");
    let state = state_with(
        EngineConfig { workers: 1, queue: 4, max_batch_samples: 1, ..EngineConfig::default() },
        Limits::default(),
    )
    .with_challenges(TeacherToken::new(token).unwrap(), ChallengeLimits::default());
    let router = app(state);
    let create = Request::post("/api/v1/challenges").header(header::AUTHORIZATION, &bearer).body(Body::empty());
    let r = send(&router, create.unwrap()).await;
    assert_eq!(r.status, StatusCode::CREATED);
    let id = r.json()["id"].as_str().unwrap().to_string();
    assert_eq!(r.headers[header::LOCATION], format!("/api/v1/challenges/{id}"));

    let info = send(&router, get(&format!("/api/v1/challenges/{id}"))).await.json();
    let (h, w) = (info["shape"][0].as_u64().unwrap() as usize, info["shape"][1].as_u64().unwrap() as usize);
    let ct = send(&router, get(info["ciphertext_url"].as_str().unwrap())).await;
    assert_eq!((ct.status, &ct.headers[header::CONTENT_TYPE]), (StatusCode::OK, &MEDIA_TYPE.parse().unwrap()));
    assert_eq!(ct.headers[header::CACHE_CONTROL], "no-store");
    let t: more_core::EncryptedTensor<f64> = more_core::decode(&ct.body, 1 << 20).unwrap();
    assert_eq!(t.shape(), [h, w]);
    let prior = DataPrior::image_8bit(0.0, 1.0, h, w);
    let recovered = ciphertext_only(&[&t], &prior).unwrap().decrypt_snapped(&t, &prior);

    let list = Request::get(format!("/api/v1/challenges/{id}/answers")).header(header::AUTHORIZATION, &bearer);
    let phrase = send(&router, list.body(Body::empty()).unwrap()).await.json()["phrase"].as_str().unwrap().to_string();
    let pixels = glyphs::render(&phrase).unwrap();
    assert_eq!(pixels.len(), h * w);
    for (r, &p) in recovered.iter().zip(&pixels) {
        assert!((r - f64::from(p) / 255.0).abs() < 1e-9, "recovered {r}, secret {p}");
    }
    let answer = serde_json::json!({ "name": "router", "answer": recovered.iter().collect::<Vec<_>>() });
    let post = Request::post(format!("/api/v1/challenges/{id}/answers"))
        .header(header::CONTENT_TYPE, "application/json")
        .body(Body::from(serde_json::to_vec(&answer).unwrap()))
        .unwrap();
    let r = send(&router, post).await;
    assert_eq!((r.status, r.json()["correct"].as_bool()), (StatusCode::OK, Some(true)));
}
