//! The server over a real TCP socket (127.0.0.1, ephemeral port): round trip, error statuses, and 1,000
//! hostile requests (random bytes, truncated bodies, huge declared shapes, NaN/Inf, wrong dtype, wrong
//! content type, unknown models) after which it still answers correctly; 600 hostile bodies for the stateful
//! routes (training jobs, challenge answers, BFV keys), after which a job trains and an answer is recorded.

mod common;

use std::net::SocketAddr;

use more_core::codec::MEDIA_TYPE;
use more_core::{KeyOptions, SecretKey};
use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;
use tokio::io::{AsyncReadExt, AsyncWriteExt};

use common::*;

async fn serve() -> SocketAddr {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(async move { axum::serve(listener, router()).await.unwrap() });
    addr
}

fn encrypted(seed: u64, shape: &[usize]) -> (SecretKey, ndarray::ArrayD<f32>, Vec<u8>) {
    let key = SecretKey::from_seed(seed, KeyOptions::default()).unwrap();
    let x = input(shape, seed);
    let body = more_core::encode(&key.encrypt_tensor::<f32>(&x.view()).unwrap());
    (key, x, body)
}

async fn assert_round_trip(addr: SocketAddr, seed: u64) {
    let (key, x, body) = encrypted(seed, &INPUT);
    let path = format!("/api/v1/models/{ID}/infer");
    let r = request(addr, "POST", &path, Some(MEDIA_TYPE), &body, None).await;
    assert_eq!(r.status, 200, "{}", r.head);
    assert!(r.head.to_ascii_lowercase().contains("server-timing: decode;dur="), "{}", r.head);
    let got = key.decrypt_tensor(&more_core::decode::<f32>(&r.body, 1 << 20).unwrap());
    let want = test_model(7).forward_plain(x.insert_axis(ndarray::Axis(0)).view()).unwrap();
    assert_eq!(got.len(), want.len());
    for (g, w) in got.iter().zip(want.iter()) {
        assert!((g - w).abs() < 1e-3, "{g} vs {w}");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn round_trip_and_errors_over_tcp() {
    let addr = serve().await;
    assert_round_trip(addr, 1).await;
    let r = request(addr, "GET", "/api/v1/health", None, b"", None).await;
    assert_eq!(r.status, 200);
    let (_, _, ok) = encrypted(2, &INPUT);
    let path = format!("/api/v1/models/{ID}/infer");
    type Case<'a> = (Option<&'a str>, String, Vec<u8>, Option<usize>, u16);
    let cases: Vec<Case> = vec![
        (Some(MEDIA_TYPE), "/api/v1/models/none/infer".into(), ok.clone(), None, 404),
        (Some("text/plain"), path.clone(), ok.clone(), None, 415),
        (Some(MEDIA_TYPE), path.clone(), b"hello world".to_vec(), None, 400),
        // Announces 100 MB: answered 413 without the body being sent.
        (Some(MEDIA_TYPE), path.clone(), vec![], Some(100_000_000), 413),
        (Some(MEDIA_TYPE), path.clone(), ok[..ok.len() / 2].to_vec(), None, 400),
    ];
    for (ct, p, body, len, status) in cases {
        let r = request(addr, "POST", &p, ct, &body, len).await;
        assert_eq!(r.status, status, "{}", r.head);
        let j: serde_json::Value = serde_json::from_slice(&r.body).unwrap();
        assert!(j["error"].is_string() && j["message"].is_string(), "{j}");
    }
    assert_round_trip(addr, 3).await;
}

/// One hostile request of kind `i % 9`.
fn hostile(rng: &mut ChaCha8Rng, i: usize, ok: &[u8]) -> (String, Option<&'static str>, Vec<u8>, &'static [u16]) {
    let path = format!("/api/v1/models/{ID}/infer");
    let valid_header = |dtype: u8, dims: &[u32]| {
        let mut b = vec![b'M', b'O', b'R', b'E', 1, dtype, dims.len() as u8, 0];
        for d in dims {
            b.extend_from_slice(&d.to_le_bytes());
        }
        b
    };
    match i % 9 {
        0 => {
            let n = rng.random_range(0..3000);
            (path, Some(MEDIA_TYPE), (0..n).map(|_| rng.random()).collect(), &[400, 413])
        }
        1 => {
            let cut = rng.random_range(0..ok.len());
            (path, Some(MEDIA_TYPE), ok[..cut].to_vec(), &[400])
        }
        2 => {
            let ndim = rng.random_range(1..=8);
            let dims: Vec<u32> = (0..ndim).map(|_| rng.random_range(1000..=u32::MAX)).collect();
            let mut b = valid_header(1, &dims);
            b.extend_from_slice(&[0; 256]);
            (path, Some(MEDIA_TYPE), b, &[413, 400])
        }
        3 => {
            let mut b = ok.to_vec();
            let at = 20 + 4 * rng.random_range(0..(ok.len() - 20) / 4);
            let v = [f32::NAN, f32::INFINITY, f32::NEG_INFINITY][rng.random_range(0..3)];
            b[at..at + 4].copy_from_slice(&v.to_le_bytes());
            (path, Some(MEDIA_TYPE), b, &[422])
        }
        4 => {
            // f64 planes of the right shape.
            let mut b = valid_header(2, &[1, 8, 8]);
            b.extend((0..4 * 64).flat_map(|_| rng.random_range(-1f64..1.0).to_le_bytes()));
            (path, Some(MEDIA_TYPE), b, &[422])
        }
        5 => {
            let ct = ["application/json", "text/plain", "application/octet-stream", "multipart/form-data"];
            (path, Some(ct[rng.random_range(0..ct.len())]), ok.to_vec(), &[415])
        }
        6 => {
            let id: String = (0..rng.random_range(1..40)).map(|_| rng.random_range(b'a'..=b'z') as char).collect();
            (format!("/api/v1/models/{id}/infer"), Some(MEDIA_TYPE), ok.to_vec(), &[404])
        }
        7 => {
            // Valid encoding, wrong shape.
            let dims: Vec<u32> = (0..rng.random_range(1..4)).map(|_| rng.random_range(1..6)).collect();
            let n: u32 = dims.iter().product();
            let mut b = valid_header(1, &dims);
            b.extend((0..4 * n).flat_map(|_| rng.random_range(-1f32..1.0).to_le_bytes()));
            (path, Some(MEDIA_TYPE), b, &[422])
        }
        _ => {
            // Flip random header bytes of a valid body.
            let mut b = ok.to_vec();
            let at = rng.random_range(0..20);
            b[at] ^= rng.random_range(1..=255u8);
            (path, Some(MEDIA_TYPE), b, &[400, 413, 422])
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn still_correct_after_1000_hostile_requests() {
    let addr = serve().await;
    let (_, _, ok) = encrypted(11, &INPUT);
    let mut rng = ChaCha8Rng::seed_from_u64(42);
    let mut counts = std::collections::BTreeMap::new();
    for i in 0..1000 {
        let (path, ct, body, allowed) = hostile(&mut rng, i, &ok);
        let r = request(addr, "POST", &path, ct, &body, None).await;
        assert!(
            allowed.contains(&r.status),
            "request {i} (kind {}): {} {:?}",
            i % 9,
            r.head,
            String::from_utf8_lossy(&r.body)
        );
        let j: serde_json::Value = serde_json::from_slice(&r.body).unwrap();
        assert!(j["error"].is_string(), "{j}");
        *counts.entry(r.status).or_insert(0) += 1;
        if i % 250 == 249 {
            assert_round_trip(addr, i as u64).await;
        }
    }
    for status in [400, 404, 413, 415, 422] {
        assert!(counts.get(&status).copied().unwrap_or(0) > 0, "{counts:?}");
    }
    assert_round_trip(addr, 12345).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn graceful_shutdown_finishes_open_requests() {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
    let server = tokio::spawn(async move {
        axum::serve(listener, router())
            .with_graceful_shutdown(async move {
                let _ = stopped.await;
            })
            .await
            .unwrap()
    });
    let (key, x, body) = encrypted(21, &INPUT);
    let mut s = tokio::net::TcpStream::connect(addr).await.unwrap();
    let head = format!(
        "POST /api/v1/models/{ID}/infer HTTP/1.1\r\nHost: {addr}\r\nContent-Type: {MEDIA_TYPE}\r\nContent-Length: {}\r\n\r\n",
        body.len()
    );
    s.write_all(head.as_bytes()).await.unwrap();
    s.write_all(&body[..100]).await.unwrap();
    tokio::time::sleep(std::time::Duration::from_millis(100)).await;
    stop.send(()).unwrap();
    tokio::time::sleep(std::time::Duration::from_millis(100)).await;
    // Shutdown has begun, but the server waits for the open request...
    assert!(!server.is_finished(), "the server must wait for the open request");
    // ...while the open request completes.
    s.write_all(&body[100..]).await.unwrap();
    let mut raw = Vec::new();
    s.read_to_end(&mut raw).await.unwrap();
    let split = raw.windows(4).position(|w| w == b"\r\n\r\n").unwrap();
    assert!(raw.starts_with(b"HTTP/1.1 200"), "{}", String::from_utf8_lossy(&raw[..split]));
    let got = key.decrypt_tensor(&more_core::decode::<f32>(&raw[split + 4..], 1 << 20).unwrap());
    let want = test_model(7).forward_plain(x.insert_axis(ndarray::Axis(0)).view()).unwrap();
    for (g, w) in got.iter().zip(want.iter()) {
        assert!((g - w).abs() < 1e-3);
    }
    tokio::time::timeout(std::time::Duration::from_secs(10), server).await.expect("server stops").unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn connection_cap_and_idle_timeout() {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let bounded = more_server::conn::BoundedListener::new(listener, 1, std::time::Duration::from_millis(1000));
    tokio::spawn(async move { axum::serve(bounded, router()).await.unwrap() });
    // A silent client takes the only slot...
    let mut silent = tokio::net::TcpStream::connect(addr).await.unwrap();
    tokio::time::sleep(std::time::Duration::from_millis(50)).await;
    // ...so the next client is served only once the silent one has been closed for idleness.
    let r = request(addr, "GET", "/api/v1/health", None, b"", None).await;
    assert_eq!(r.status, 200);
    let mut buf = [0u8; 16];
    let n = silent.read(&mut buf).await.unwrap_or(0);
    assert_eq!(n, 0, "the idle connection was closed");
    // Bytes keep a connection alive: a request sent in slow pieces (each within the idle time) is served.
    let (key, x, body) = encrypted(31, &INPUT);
    let mut s = tokio::net::TcpStream::connect(addr).await.unwrap();
    let head = format!(
        "POST /api/v1/models/{ID}/infer HTTP/1.1\r\nHost: {addr}\r\nContent-Type: {MEDIA_TYPE}\r\nContent-Length: {}\r\nConnection: close\r\n\r\n",
        body.len()
    );
    s.write_all(head.as_bytes()).await.unwrap();
    for chunk in body.chunks(body.len() / 3 + 1) {
        tokio::time::sleep(std::time::Duration::from_millis(100)).await;
        s.write_all(chunk).await.unwrap();
    }
    let mut raw = Vec::new();
    s.read_to_end(&mut raw).await.unwrap();
    let split = raw.windows(4).position(|w| w == b"\r\n\r\n").unwrap();
    assert!(raw.starts_with(b"HTTP/1.1 200"));
    let got = key.decrypt_tensor(&more_core::decode::<f32>(&raw[split + 4..], 1 << 20).unwrap());
    let want = test_model(7).forward_plain(x.insert_axis(ndarray::Axis(0)).view()).unwrap();
    assert!(got.iter().zip(want.iter()).all(|(g, w)| (g - w).abs() < 1e-3));
}

/// The stateful routes over a real socket: 600 hostile bodies for training jobs, challenge answers and BFV
/// key uploads (random bytes, truncated and flipped real bodies, wrong media types, huge declared lengths,
/// JSON of the wrong shape) each get a 4xx JSON answer, never a 5xx; then a real job trains and a right
/// answer is recorded.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn stateful_routes_refuse_hostile_bodies_and_still_work() {
    use more_enctrain::owner::KeyOwner;
    use more_enctrain::train::TargetNoise;
    use more_enctrain::upload::{JobRequest, OptimizerKind, encode_body};
    use more_server::jobs::{Jobs, TrainingLimits};
    use more_server::{ChallengeLimits, TeacherToken};

    let dir = std::env::temp_dir().join(format!("more-jobs-tcp-hostile-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    let limits = TrainingLimits { max_upload_bytes: 1 << 20, max_jobs_per_client: 1000, ..TrainingLimits::default() };
    let jobs = Jobs::open(&dir, limits).unwrap();
    let token = "a-teacher-token-for-tests";
    let state =
        state_with(more_server::EngineConfig { workers: 1, ..Default::default() }, more_server::Limits::default())
            .with_jobs(jobs)
            .with_challenges(
                TeacherToken::new(token).unwrap(),
                ChallengeLimits { max_answers: 5000, ..Default::default() },
            )
            .with_bfv(more_server::bfv::BfvService::new(Vec::new(), Default::default()).unwrap());
    let router = more_server::app(state);
    let teacher = |req: axum::http::request::Builder| req.header("authorization", format!("Bearer {token}"));
    let created = send(
        &router,
        teacher(axum::http::Request::post("/api/v1/challenges")).body(axum::body::Body::empty()).unwrap(),
    )
    .await;
    let challenge = created.json()["id"].as_str().unwrap().to_string();
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let served = router.clone();
    tokio::spawn(async move { axum::serve(listener, served).await.unwrap() });

    let (n, k) = (16, SecretKey::from_seed(5, KeyOptions::default()).unwrap());
    let x = ndarray::ArrayD::from_shape_fn(ndarray::IxDyn(&[n, 7]), |i| (i[0] + i[1]) as f32 / 20.0);
    let y = ndarray::ArrayD::from_shape_fn(ndarray::IxDyn(&[n, 6]), |i| (i[0] * i[1]) as f32 / 100.0);
    let mut owner = KeyOwner::with_seed(k, 3);
    let (cx, cy) = (
        owner.encrypt_inputs(&x.view(), -2.0, 2.0).unwrap(),
        owner.encrypt_targets(&y, TargetNoise::Uniform { lo: -1.0, hi: 1.0 }).unwrap(),
    );
    let request_ = JobRequest {
        network: "wbc-mlp".into(),
        epochs: 1,
        batch_size: 8,
        lr: 1e-3,
        lr_decay: 1.0,
        optimizer: OptimizerKind::Adam,
        seed: 1,
    };
    let job = encode_body(&request_, &cx, &cy, &owner.encrypt_canaries::<f32>().unwrap()).unwrap();
    let answers = format!("/api/v1/challenges/{challenge}/answers");
    let job_type = more_enctrain::upload::MEDIA_TYPE;
    let mut rng = ChaCha8Rng::seed_from_u64(7);
    let mut counts = std::collections::BTreeMap::new();
    for i in 0..600 {
        let random: Vec<u8> = (0..rng.random_range(0..4000)).map(|_| rng.random()).collect();
        let mut flipped = job.clone();
        let at = rng.random_range(0..flipped.len());
        flipped[at] ^= rng.random_range(1..=255u8);
        let cut = job[..rng.random_range(0..job.len())].to_vec();
        let (path, ct, body, declared): (&str, Option<&str>, Vec<u8>, Option<usize>) = match i % 12 {
            0 => ("/api/v1/jobs", Some(job_type), random, None),
            1 => ("/api/v1/jobs", Some(job_type), cut, None),
            2 => ("/api/v1/jobs", Some(job_type), flipped, None),
            3 => ("/api/v1/jobs", Some("application/json"), job.clone(), None),
            4 => ("/api/v1/jobs", Some(job_type), b"x".to_vec(), Some(64 << 20)),
            5 => (&answers, Some("application/json"), random, None),
            6 => (&answers, Some("application/json"), br#"{"name": "eve", "answer": [1, 2, 3]}"#.to_vec(), None),
            7 => (&answers, Some("application/json"), br#"{"name": "<>", "phrase": "X"}"#.to_vec(), None),
            8 => (&answers, Some("text/plain"), br#"{"name": "eve", "phrase": "X"}"#.to_vec(), None),
            9 => (&answers, Some("application/json"), b"x".to_vec(), Some(1 << 30)),
            10 => ("/api/v1/bfv/keys", Some("application/octet-stream"), random, None),
            _ => ("/api/v1/challenges/ffff/answers", Some("application/json"), b"{}".to_vec(), None),
        };
        let r = request(addr, "POST", path, ct, &body, declared).await;
        // A flipped byte inside a ciphertext plane can leave a valid upload (another finite value): accepted.
        let flipped_but_valid = i % 12 == 2 && r.status == 202;
        assert!(
            (400..500).contains(&r.status) || flipped_but_valid,
            "request {i} (kind {}): {} {:?}",
            i % 12,
            r.head,
            String::from_utf8_lossy(&r.body)
        );
        let j: serde_json::Value = serde_json::from_slice(&r.body).unwrap();
        assert!(j["error"].is_string() || flipped_but_valid, "{j}");
        *counts.entry(r.status).or_insert(0) += 1;
    }
    for status in [400, 404, 413, 415, 422] {
        assert!(counts.get(&status).copied().unwrap_or(0) > 0, "{counts:?}");
    }
    // Still working: a real job is accepted and trains; the right phrase is recorded once.
    let r = request(addr, "POST", "/api/v1/jobs", Some(job_type), &job, None).await;
    assert_eq!(r.status, 202, "{}", String::from_utf8_lossy(&r.body));
    let listed =
        send(&router, teacher(axum::http::Request::get(&answers)).body(axum::body::Body::empty()).unwrap()).await;
    let phrase = listed.json()["phrase"].as_str().unwrap().to_string();
    let body = serde_json::json!({"name": "ada", "phrase": phrase}).to_string();
    let r = request(addr, "POST", &answers, Some("application/json"), body.as_bytes(), None).await;
    assert_eq!(
        (r.status, serde_json::from_slice::<serde_json::Value>(&r.body).unwrap()["correct"].clone()),
        (200, true.into())
    );
    let listed =
        send(&router, teacher(axum::http::Request::get(&answers)).body(axum::body::Body::empty()).unwrap()).await;
    let solved = listed.json()["solved"].as_array().unwrap().clone();
    assert_eq!(solved.len(), 1, "{solved:?}");
    let _ = std::fs::remove_dir_all(&dir);
}
