//! Training-job fixtures shared by the job tests: a WBC-shaped data set, a job request, its encrypted upload
//! and the events of a finished job's stream.

use std::net::SocketAddr;
use std::time::Duration;

use axum::Router;
use axum::body::Body;
use axum::extract::ConnectInfo;
use axum::http::{Request, StatusCode, header};
use ndarray::{ArrayD, IxDyn};
use rand::SeedableRng;
use rand_chacha::ChaCha8Rng;

use more_core::{KeyOptions, SecretKey};
use more_enctrain::owner::KeyOwner;
use more_enctrain::train::TargetNoise;
use more_enctrain::upload::{JobRequest, MEDIA_TYPE, OptimizerKind, encode_body};
use more_server::conn::ClientAddr;

use super::{get, request, send};

/// `POST /api/v1/jobs` with this body, from client `10.0.0.{client}`.
pub fn post_job(body: Vec<u8>, client: u8) -> Request<Body> {
    let mut req = Request::post("/api/v1/jobs")
        .header(header::CONTENT_TYPE, MEDIA_TYPE)
        .header(header::CONTENT_LENGTH, body.len())
        .body(Body::from(body))
        .unwrap();
    req.extensions_mut().insert(ConnectInfo(ClientAddr(SocketAddr::from(([10, 0, 0, client], 4000)))));
    req
}

/// A WBC-shaped data set (7 inputs, 6 targets) the MLP can fit.
pub fn plain_data(n: usize, seed: u64) -> (ArrayD<f32>, ArrayD<f32>) {
    use rand::Rng;
    let mut rng = ChaCha8Rng::seed_from_u64(seed);
    let x = ArrayD::from_shape_fn(IxDyn(&[n, 7]), |_| rng.random_range(-1.5f32..1.5));
    let y = ArrayD::from_shape_fn(IxDyn(&[n, 6]), |i| (x[[i[0], i[1]]] * 0.5 + x[[i[0], i[1] + 1]] * 0.3).tanh());
    (x, y)
}

/// A `wbc-mlp` job of `epochs` epochs (batches of 8, Adam, seed 4).
pub fn job_request(epochs: usize) -> JobRequest {
    JobRequest {
        network: "wbc-mlp".into(),
        epochs,
        batch_size: 8,
        lr: 3e-3,
        lr_decay: 0.98,
        optimizer: OptimizerKind::Adam,
        seed: 4,
    }
}

/// The encrypted upload of a job: inputs, targets and canaries under `key`.
pub fn body_for(key: &SecretKey, req: &JobRequest, x: &ArrayD<f32>, y: &ArrayD<f32>) -> Vec<u8> {
    let mut owner = KeyOwner::with_seed(key.clone(), 11);
    let cx = owner.encrypt_inputs(&x.view(), -2.0, 2.0).unwrap();
    let cy = owner.encrypt_targets(y, TargetNoise::Uniform { lo: -1.0, hi: 1.0 }).unwrap();
    let c = owner.encrypt_canaries::<f32>().unwrap();
    encode_body(req, &cx, &cy, &c).unwrap()
}

/// A MORE key from a seed.
pub fn key(seed: u64) -> SecretKey {
    SecretKey::from_seed(seed, KeyOptions::default()).unwrap()
}

/// The events of a finished job's stream: (kind, data).
pub async fn events(router: &Router, id: &str) -> Vec<(String, serde_json::Value)> {
    let r = tokio::time::timeout(Duration::from_secs(120), send(router, get(&format!("/api/v1/jobs/{id}/events"))))
        .await
        .expect("the job ends");
    assert_eq!(r.status, StatusCode::OK);
    let text = String::from_utf8(r.body.to_vec()).unwrap();
    let mut out = Vec::new();
    let mut kind = String::new();
    for line in text.lines() {
        if let Some(k) = line.strip_prefix("event:") {
            kind = k.trim().to_string();
        } else if let Some(d) = line.strip_prefix("data:") {
            out.push((kind.clone(), serde_json::from_str(d.trim()).unwrap()));
        }
    }
    out
}

/// Polls a job's status through `router` until its state is `state` (at most a minute).
pub async fn wait_for(router: &Router, id: &str, state: &str) {
    let t = std::time::Instant::now();
    loop {
        let r = send(router, get(&format!("/api/v1/jobs/{id}"))).await;
        if r.json()["state"] == state {
            return;
        }
        assert!(t.elapsed() < Duration::from_secs(60), "job {id} never reached {state}: {}", r.json());
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

/// Posts a job to the server at `addr` over TCP and waits until it has trained one epoch; its id.
pub async fn post_and_wait_for_training(addr: SocketAddr, body: &[u8]) -> String {
    let r = request(addr, "POST", "/api/v1/jobs", Some(MEDIA_TYPE), body, None).await;
    assert_eq!(r.status, 202, "{:?}", String::from_utf8_lossy(&r.body));
    let id = serde_json::from_slice::<serde_json::Value>(&r.body).unwrap()["id"].as_str().unwrap().to_string();
    let t = std::time::Instant::now();
    loop {
        let r = request(addr, "GET", &format!("/api/v1/jobs/{id}"), None, b"", None).await;
        if serde_json::from_slice::<serde_json::Value>(&r.body).unwrap()["epochs_done"].as_u64() >= Some(1) {
            return id;
        }
        assert!(t.elapsed() < Duration::from_secs(60), "training never started");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

/// The place a waiting job's stream reports last (`queued` → `ahead`): the log replays at once, so the
/// chunks that come within 600 ms hold it.
pub async fn place(router: &Router, id: &str) -> u64 {
    use futures_util::StreamExt;
    use tower::ServiceExt;
    let req = Request::get(format!("/api/v1/jobs/{id}/events")).body(Body::empty()).unwrap();
    let res = router.clone().oneshot(req).await.unwrap();
    let mut body = res.into_body().into_data_stream();
    let mut text = String::new();
    while let Ok(Some(Ok(chunk))) = tokio::time::timeout(Duration::from_millis(600), body.next()).await {
        text.push_str(&String::from_utf8_lossy(&chunk));
    }
    let data = text.lines().filter_map(|l| l.strip_prefix("data:")).next_back().unwrap().trim().to_string();
    serde_json::from_str::<serde_json::Value>(&data).unwrap()["ahead"].as_u64().unwrap()
}
