//! The server over a real TCP socket (127.0.0.1, ephemeral port): round trip, error statuses, and 1,000
//! hostile requests (random bytes, truncated bodies, huge declared shapes, NaN/Inf, wrong dtype, wrong
//! content type, unknown models) after which it still answers correctly.

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
