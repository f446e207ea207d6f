//! Shared test fixtures: a small real more-nn model with random weights, saved to and loaded from a temp
//! directory, and helpers to build requests: through the router in process ([`send`], [`Answer`]) or as
//! raw HTTP over TCP ([`request`], [`Reply`]).
#![allow(dead_code)]

pub mod redis_server;
pub mod training;

use std::path::PathBuf;
use std::time::Duration;

use axum::Router;
use axum::body::{Body, Bytes};
use axum::http::{HeaderMap, Request, StatusCode};
use http_body_util::BodyExt;
use more_nn::{ElementFunction, Layer, LayerSpec, Model, ModelMeta};
use more_server::{AppState, EngineConfig, Limits, Registry, Samples, app};
use ndarray::{Array1, Array2, Array4, ArrayD, IxDyn};
use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;
use tower::ServiceExt;

/// Input shape of the test model.
pub const INPUT: [usize; 3] = [1, 8, 8];
/// Its id.
pub const ID: &str = "test-cnn-relu";

/// A conv → relu → avgpool → flatten → dense model on 1x8x8 inputs with 3 outputs, random weights.
pub fn test_model(seed: u64) -> Model {
    let mut rng = ChaCha8Rng::seed_from_u64(seed);
    let mut r = |n: usize| (0..n).map(|_| rng.random_range(-0.5f32..0.5)).collect::<Vec<_>>();
    let conv = LayerSpec::Conv2d { in_channels: 1, out_channels: 2, kernel: [3, 3], stride: 1, padding: 1 }
        .build(vec![Array4::from_shape_vec((2, 1, 3, 3), r(18)).unwrap().into_dyn(), Array1::from(r(2)).into_dyn()])
        .unwrap();
    let dense = LayerSpec::Dense { inputs: 32, outputs: 3 }
        .build(vec![Array2::from_shape_vec((32, 3), r(96)).unwrap().into_dyn(), Array1::from(r(3)).into_dyn()])
        .unwrap();
    let layer = |spec| Layer::parameter_free(spec).unwrap();
    let mut meta = ModelMeta::new(ID, "test");
    meta.description = "random weights for the server tests".into();
    meta.labels = vec!["a".into(), "b".into(), "c".into()];
    Model::new(
        meta,
        &INPUT,
        vec![
            conv,
            layer(LayerSpec::Activation { function: ElementFunction::Relu }),
            layer(LayerSpec::AvgPool { size: 2, stride: 2 }),
            layer(LayerSpec::Flatten),
            dense,
        ],
    )
    .unwrap()
}

/// A temp directory holding the test model file (saved and loaded through the real file format).
pub fn model_dir() -> PathBuf {
    static N: std::sync::atomic::AtomicUsize = std::sync::atomic::AtomicUsize::new(0);
    let dir = std::env::temp_dir().join(format!(
        "more-server-test-{}-{}",
        std::process::id(),
        N.fetch_add(1, std::sync::atomic::Ordering::Relaxed)
    ));
    std::fs::create_dir_all(&dir).unwrap();
    test_model(7).save(dir.join(format!("{ID}.morenn"))).unwrap();
    dir
}

/// The sample directory of the shared data, if present.
pub fn samples_dir() -> PathBuf {
    std::env::var("MORE_DATA")
        .map_or_else(|_| PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../../shared/data"), PathBuf::from)
        .join("angio/samples")
}

/// State over the test model, with small limits so the limit paths are cheap to reach.
pub fn state_with(engine: EngineConfig, limits: Limits) -> AppState {
    let registry = Registry::load_dir(model_dir()).unwrap();
    AppState::new(registry, engine, limits)
}

/// The default test router.
pub fn router() -> Router {
    let limits = Limits {
        max_batch: 8,
        max_body: 1 << 20,
        max_inflight: 64,
        request_timeout: Duration::from_secs(10),
        ..Limits::default()
    };
    let mut state =
        state_with(EngineConfig { workers: 2, queue: 64, max_batch_samples: 16, ..EngineConfig::default() }, limits);
    if samples_dir().is_dir() {
        state = state.with_samples(Samples::load(samples_dir()).unwrap());
    }
    app(state)
}

/// A random input of shape `shape`.
pub fn input(shape: &[usize], seed: u64) -> ArrayD<f32> {
    let mut rng = ChaCha8Rng::seed_from_u64(seed);
    let n = shape.iter().product();
    ArrayD::from_shape_vec(IxDyn(shape), (0..n).map(|_| rng.random_range(0f32..1.0)).collect()).unwrap()
}

/// A raw HTTP/1.1 answer: status, header block and body.
pub struct Reply {
    pub status: u16,
    pub head: String,
    pub body: Vec<u8>,
}

/// One HTTP/1.1 request on a fresh connection (`Connection: close`); the body is sent as given, with an
/// honest Content-Length unless `length` overrides it.
/// Serves `state` on a free loopback port; its address.
pub async fn listen(state: more_server::AppState) -> std::net::SocketAddr {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(async move { axum::serve(listener, more_server::app(state)).await.unwrap() });
    addr
}

/// The JSON body of a reply (panics with the reply if it is not JSON).
pub fn reply_json(r: &Reply) -> serde_json::Value {
    serde_json::from_slice(&r.body).unwrap_or_else(|_| panic!("not JSON: {} {:?}", r.head, r.body))
}

pub async fn request(
    addr: std::net::SocketAddr,
    method: &str,
    path: &str,
    ct: Option<&str>,
    body: &[u8],
    length: Option<usize>,
) -> Reply {
    request_with(addr, method, path, ct, body, length, &[]).await
}

/// [`request`] with extra header lines (`name`, `value`).
pub async fn request_with(
    addr: std::net::SocketAddr,
    method: &str,
    path: &str,
    ct: Option<&str>,
    body: &[u8],
    length: Option<usize>,
    headers: &[(&str, &str)],
) -> Reply {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let mut s = tokio::net::TcpStream::connect(addr).await.unwrap();
    let mut head = format!("{method} {path} HTTP/1.1\r\nHost: {addr}\r\nConnection: close\r\n");
    for (name, value) in headers {
        head.push_str(&format!("{name}: {value}\r\n"));
    }
    if let Some(ct) = ct {
        head.push_str(&format!("Content-Type: {ct}\r\n"));
    }
    if method == "POST" {
        head.push_str(&format!("Content-Length: {}\r\n", length.unwrap_or(body.len())));
    }
    head.push_str("\r\n");
    s.write_all(head.as_bytes()).await.unwrap();
    // The server may answer (and close) before reading the whole body: ignore write errors.
    let _ = s.write_all(body).await;
    if length.is_some_and(|l| l > body.len()) {
        let _ = s.shutdown().await;
    }
    let mut raw = Vec::new();
    let _ = s.read_to_end(&mut raw).await;
    let split = raw.windows(4).position(|w| w == b"\r\n\r\n").unwrap_or_else(|| panic!("no response: {raw:?}"));
    let head = String::from_utf8_lossy(&raw[..split]).to_string();
    let status = head[9..12].parse().unwrap();
    Reply { status, head, body: raw[split + 4..].to_vec() }
}

/// An answer of the router called in process: status, headers and body.
pub struct Answer {
    pub status: StatusCode,
    pub headers: HeaderMap,
    pub body: Bytes,
}

impl Answer {
    /// The body as JSON (panics, naming the body, if it is not).
    pub fn json(&self) -> serde_json::Value {
        serde_json::from_slice(&self.body).unwrap_or_else(|e| panic!("not JSON ({e}): {:?}", self.body))
    }

    /// The `error` code of a JSON error body, after checking it has a non-empty `message`.
    pub fn error(&self) -> String {
        let j = self.json();
        assert!(j["message"].as_str().is_some_and(|m| !m.is_empty()), "{j}");
        j["error"].as_str().unwrap().to_string()
    }
}

/// Calls the router once with `req`.
pub async fn send(router: &Router, req: Request<Body>) -> Answer {
    let res = router.clone().oneshot(req).await.unwrap();
    let status = res.status();
    let headers = res.headers().clone();
    let body = res.into_body().collect().await.unwrap().to_bytes();
    Answer { status, headers, body }
}

/// A `GET` of `uri` without a body.
pub fn get(uri: &str) -> Request<Body> {
    Request::get(uri).body(Body::empty()).unwrap()
}

/// Starts the real `more-server` binary from the repository root on a free loopback port, logs off, with
/// `--models models` and these flags: (child, address).
pub fn start_binary(flags: &[&str]) -> (std::process::Child, String) {
    use std::io::BufRead;
    let root = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../..");
    let mut child = std::process::Command::new(env!("CARGO_BIN_EXE_more-server"))
        .args(["--addr", "127.0.0.1:0", "--models", "models"])
        .args(flags)
        .env("RUST_LOG", "off")
        .current_dir(root)
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::null())
        .spawn()
        .unwrap();
    let mut line = String::new();
    std::io::BufReader::new(child.stdout.take().unwrap()).read_line(&mut line).unwrap();
    let addr =
        line.trim().strip_prefix("more-server listening on http://").expect(&line).trim_end_matches('/').to_string();
    (child, addr)
}
