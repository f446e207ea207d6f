//! Uploaded models (`POST /api/v1/models`, `DELETE /api/v1/models/{id}`): an uploaded model answers the
//! infer route exactly as the same model served from the model directory; it is not listed; the count cap,
//! the per-client share and the time to live hold; hostile files are refused with their 4xx and leave the
//! server answering; an upload retried with its Idempotency-Key creates nothing; and two replicas on one
//! `redis-server` share the models (skipped, with the reason printed, when `redis-server` is missing).

mod common;

use std::net::SocketAddr;
use std::path::PathBuf;
use std::time::Duration;

use axum::Router;
use axum::body::Body;
use axum::extract::ConnectInfo;
use axum::http::{Request, StatusCode, header};
use more_core::{KeyOptions, SecretKey};
use more_nn::{ElementFunction, Layer, LayerSpec, Model, ModelMeta};
use more_server::conn::ClientAddr;
use more_server::state_store::Redis;
use more_server::uploads::{ID_PREFIX, MEDIA_TYPE, MODEL_OVERHEAD_BYTES, UploadLimits};
use more_server::{AppState, EngineConfig, Limits, Registry, app};
use ndarray::{Array1, Array2};
use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;

use common::redis_server::RedisServer;
use common::{Answer, get, request, send};

fn models_dir() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../models")
}

/// A flat MNIST MLP (`[784] → 16 → ReLU → 10`) with random weights, as an ONNX import of a
/// scikit-learn classifier would give (no labels, no preprocessing kind: the server fills them in).
fn mlp(id: &str, seed: u64) -> Model {
    let mut rng = ChaCha8Rng::seed_from_u64(seed);
    let mut r = |n: usize| (0..n).map(|_| rng.random_range(-0.1f32..0.1)).collect::<Vec<_>>();
    let d1 = LayerSpec::Dense { inputs: 784, outputs: 16 }
        .build(vec![Array2::from_shape_vec((784, 16), r(784 * 16)).unwrap().into_dyn(), Array1::from(r(16)).into_dyn()])
        .unwrap();
    let d2 = LayerSpec::Dense { inputs: 16, outputs: 10 }
        .build(vec![Array2::from_shape_vec((16, 10), r(160)).unwrap().into_dyn(), Array1::from(r(10)).into_dyn()])
        .unwrap();
    let relu = Layer::parameter_free(LayerSpec::Activation { function: ElementFunction::Relu }).unwrap();
    let mut meta = ModelMeta::new(id, "mnist");
    meta.preprocessing.scale = 1.0 / 255.0;
    Model::new(meta, &[784], vec![d1, relu, d2]).unwrap()
}

fn limits() -> Limits {
    Limits { max_batch: 8, max_body: 1 << 20, request_timeout: Duration::from_secs(10), ..Limits::default() }
}

fn engine() -> EngineConfig {
    EngineConfig { workers: 1, queue: 16, ..EngineConfig::default() }
}

/// A state over the bundled models taking uploads within `uploads`.
fn state(uploads: UploadLimits) -> AppState {
    AppState::new(Registry::load_dir(models_dir()).unwrap(), engine(), limits()).with_uploads(uploads)
}

fn from(client: u8, mut req: Request<Body>) -> Request<Body> {
    req.extensions_mut().insert(ConnectInfo(ClientAddr(SocketAddr::from(([10, 0, 0, client], 4000)))));
    req
}

fn upload_req(body: Vec<u8>) -> Request<Body> {
    Request::post("/api/v1/models")
        .header(header::CONTENT_TYPE, MEDIA_TYPE)
        .header(header::CONTENT_LENGTH, body.len())
        .body(Body::from(body))
        .unwrap()
}

async fn upload(router: &Router, client: u8, body: Vec<u8>) -> Answer {
    send(router, from(client, upload_req(body))).await
}

/// Uploads `model` and returns its id, checking the answer.
async fn upload_ok(router: &Router, client: u8, model: &Model) -> String {
    let r = upload(router, client, model.to_bytes()).await;
    assert_eq!(r.status, StatusCode::CREATED, "{:?}", r.body);
    let j = r.json();
    let id = j["id"].as_str().unwrap().to_string();
    assert!(id.starts_with(ID_PREFIX) && id.len() == ID_PREFIX.len() + 32, "{id}");
    assert_eq!(r.headers[header::LOCATION], format!("/api/v1/models/{id}").as_str());
    id
}

fn digit(seed: u64) -> ndarray::ArrayD<f32> {
    common::input(&[1, 784], seed)
}

fn infer_req(id: &str, body: Vec<u8>) -> Request<Body> {
    Request::post(format!("/api/v1/models/{id}/infer"))
        .header(header::CONTENT_TYPE, more_core::codec::MEDIA_TYPE)
        .header(header::CONTENT_LENGTH, body.len())
        .body(Body::from(body))
        .unwrap()
}

/// The encrypted answer of model `id` to one digit encrypted under a seeded key.
async fn infer(router: &Router, id: &str) -> Answer {
    let key = SecretKey::from_seed(5, KeyOptions::default()).unwrap();
    let body = more_core::encode(&key.encrypt_tensor::<f32>(&digit(5).view()).unwrap());
    send(router, infer_req(id, body)).await
}

#[tokio::test]
async fn an_uploaded_model_answers_like_the_same_model_served_from_files() {
    let model = mlp("my-mlp", 1);
    let router = app(state(UploadLimits::default()));
    let r = upload(&router, 1, model.to_bytes()).await;
    assert_eq!(r.status, StatusCode::CREATED, "{:?}", r.body);
    let j = r.json();
    let id = j["id"].as_str().unwrap().to_string();
    assert_eq!(j["expires_in_s"], 3600);
    // The listing is the one GET /api/v1/models/{id} answers, with the server's id, the task's labels and
    // preprocessing kind filled in, and the file's own id kept.
    let listing = &j["model"];
    assert_eq!(listing["id"], id.as_str());
    assert_eq!(listing["infer_url"], format!("/api/v1/models/{id}/infer").as_str());
    assert_eq!(listing["input_shape"], serde_json::json!([784]));
    assert_eq!(listing["labels"].as_array().unwrap().len(), 10);
    assert_eq!(listing["preprocessing"]["kind"], "mnist-digit");
    assert_eq!(listing["training"]["uploaded_as"], "my-mlp");
    assert_eq!(send(&router, get(&format!("/api/v1/models/{id}"))).await.json(), *listing);
    // Not listed: the id is a capability.
    let all = send(&router, get("/api/v1/models")).await.json();
    assert!(all["models"].as_array().unwrap().iter().all(|m| !m["id"].as_str().unwrap().starts_with(ID_PREFIX)));

    // The same model from a model directory, on another server: the same ciphertext gets the same bytes.
    let dir = common::model_dir();
    model.save(dir.join("my-mlp.morenn")).unwrap();
    let from_files = app(AppState::new(Registry::load_dir(&dir).unwrap(), engine(), limits()));
    let key = SecretKey::from_seed(5, KeyOptions::default()).unwrap();
    let body = more_core::encode(&key.encrypt_tensor::<f32>(&digit(5).view()).unwrap());
    let (a, b) =
        (send(&router, infer_req(&id, body.clone())).await, send(&from_files, infer_req("my-mlp", body)).await);
    assert_eq!((a.status, b.status), (StatusCode::OK, StatusCode::OK), "{:?}", a.body);
    assert_eq!(a.body, b.body, "the uploaded model answers exactly as the one served from files");
    let got = key.decrypt_tensor(&more_core::decode::<f32>(&a.body, 1 << 20).unwrap());
    let want = model.forward_plain(digit(5).view()).unwrap();
    assert!(got.iter().zip(want.iter()).all(|(g, w)| (g - w).abs() < 1e-4), "{got} vs {want}");

    // Metrics name it "uploaded", never by its id.
    let metrics = String::from_utf8(send(&router, get("/metrics")).await.body.to_vec()).unwrap();
    assert!(metrics.contains("model=\"uploaded\"") && !metrics.contains(&id), "{metrics}");

    // Deleted: 204, then unknown everywhere; a bundled model cannot be deleted.
    let del = |id: &str| Request::delete(format!("/api/v1/models/{id}")).body(Body::empty()).unwrap();
    assert_eq!(send(&router, del(&id)).await.status, StatusCode::NO_CONTENT);
    for r in [
        send(&router, del(&id)).await,
        infer(&router, &id).await,
        send(&router, get(&format!("/api/v1/models/{id}"))).await,
    ] {
        assert_eq!((r.status, r.error().as_str()), (StatusCode::NOT_FOUND, "unknown_model"));
    }
    let r = send(&router, del("mnist-cnn-relu")).await;
    assert_eq!((r.status, r.error().as_str()), (StatusCode::CONFLICT, "bundled_model"));
}

/// A model file around a JSON header and weight bytes, with a valid checksum (for hostile files).
fn assemble(json: &str, weights: &[u8]) -> Vec<u8> {
    more_nn::model::frame(json.as_bytes(), weights)
}

#[tokio::test]
async fn wrong_and_hostile_files_are_refused_with_their_reason_and_the_server_keeps_answering() {
    let small = UploadLimits::new(16, 1 << 20, Duration::from_secs(60));
    let router = app(state(small));
    let good = mlp("good", 2);
    let expect = |r: Answer, status: u16, code: &str, says: &str| {
        assert_eq!(r.status.as_u16(), status, "{code}: {:?}", r.body);
        assert_eq!(r.error(), code);
        let message = r.json()["message"].as_str().unwrap().to_string();
        assert!(message.contains(says), "{code}: {message}");
    };
    expect(upload(&router, 1, b"not a model at all".to_vec()).await, 400, "malformed", "wrong magic");
    let mut flipped = good.to_bytes();
    flipped[100] ^= 1;
    expect(upload(&router, 1, flipped).await, 400, "malformed", "checksum");
    let bytes = good.to_bytes();
    expect(upload(&router, 1, bytes[..bytes.len() / 2].to_vec()).await, 400, "malformed", "");
    // Shapes that overflow: refused by the decoder, never a panic.
    let meta = |task: &str, input: &str| {
        serde_json::to_string(&ModelMeta::new("x", task))
            .unwrap()
            .replace(r#""input_shape":[]"#, &format!(r#""input_shape":{input}"#))
    };
    let huge = format!(
        r#"{{"meta":{},"layers":[{{"type":"conv2d","in_channels":1,"out_channels":1,"kernel":[1,1],"stride":1,"padding":4611686018427387904}},{{"type":"flatten"}}]}}"#,
        meta("mnist", "[1,28,28]")
    );
    expect(upload(&router, 1, assemble(&huge, &[0; 8])).await, 400, "malformed", "");
    // Decodes, but not for a task this server runs, or not of its shape.
    let mut other = mlp("wbc?", 3);
    other.meta_mut().task = "cifar".into();
    expect(upload(&router, 1, other.to_bytes()).await, 422, "unknown_task", "mnist");
    let small_in = {
        let d = LayerSpec::Dense { inputs: 3, outputs: 10 }
            .build(vec![
                ndarray::ArrayD::zeros(ndarray::IxDyn(&[3, 10])),
                ndarray::ArrayD::zeros(ndarray::IxDyn(&[10])),
            ])
            .unwrap();
        Model::new(ModelMeta::new("tiny", "mnist"), &[3], vec![d]).unwrap()
    };
    expect(upload(&router, 1, small_in.to_bytes()).await, 422, "wrong_shape", "784");
    let five_out = {
        let d = LayerSpec::Dense { inputs: 784, outputs: 5 }
            .build(vec![
                ndarray::ArrayD::zeros(ndarray::IxDyn(&[784, 5])),
                ndarray::ArrayD::zeros(ndarray::IxDyn(&[5])),
            ])
            .unwrap();
        Model::new(
            ModelMeta::new("five", "mnist"),
            &[1, 28, 28],
            vec![Layer::parameter_free(LayerSpec::Flatten).unwrap(), d],
        )
        .unwrap()
    };
    expect(upload(&router, 1, five_out.to_bytes()).await, 422, "wrong_shape", "10 outputs");
    let mut labelled = mlp("labels", 4);
    labelled.meta_mut().labels = vec!["a".into(); 3];
    expect(upload(&router, 1, labelled.to_bytes()).await, 422, "invalid_model", "3 labels");
    let mut angio = mlp("kind", 4);
    angio.meta_mut().preprocessing.kind = "angio-frame".into();
    expect(upload(&router, 1, angio.to_bytes()).await, 422, "invalid_model", "mnist-digit");
    let mut zero_std = mlp("std", 4);
    zero_std.meta_mut().preprocessing.std = vec![0.0];
    expect(upload(&router, 1, zero_std.to_bytes()).await, 422, "invalid_model", "");
    let mut chatty = mlp("chatty", 4);
    chatty.meta_mut().description = "x".repeat(20_000);
    expect(upload(&router, 1, chatty.to_bytes()).await, 422, "invalid_model", "metadata");
    // A forward pass too large for the budget: a wide convolution on the digit.
    let wide = {
        let conv = LayerSpec::Conv2d { in_channels: 1, out_channels: 64, kernel: [1, 1], stride: 1, padding: 200 };
        let c = conv
            .build(vec![
                ndarray::ArrayD::zeros(ndarray::IxDyn(&[64, 1, 1, 1])),
                ndarray::ArrayD::zeros(ndarray::IxDyn(&[64])),
            ])
            .unwrap();
        let pool = Layer::parameter_free(LayerSpec::GlobalAvgPool).unwrap();
        let d = LayerSpec::Dense { inputs: 64, outputs: 10 }
            .build(vec![
                ndarray::ArrayD::zeros(ndarray::IxDyn(&[64, 10])),
                ndarray::ArrayD::zeros(ndarray::IxDyn(&[10])),
            ])
            .unwrap();
        Model::new(ModelMeta::new("wide", "mnist"), &[1, 28, 28], vec![c, pool, d]).unwrap()
    };
    expect(upload(&router, 1, wide.to_bytes()).await, 422, "too_costly", "");
    // Size and media type: from the headers, before a byte is read.
    let big = vec![0u8; (1 << 20) + 1];
    expect(upload(&router, 1, big).await, 413, "too_large", "");
    let r = send(
        &router,
        Request::post("/api/v1/models")
            .header(header::CONTENT_TYPE, "application/json")
            .body(Body::from("{}"))
            .unwrap(),
    )
    .await;
    expect(r, 415, "unsupported_media_type", MEDIA_TYPE);

    // A thousand random and mutated files: each a 4xx, never a 5xx.
    let mut rng = ChaCha8Rng::seed_from_u64(9);
    let valid = good.to_bytes();
    for i in 0..1000 {
        let body = match i % 3 {
            0 => (0..rng.random_range(0..300)).map(|_| rng.random()).collect::<Vec<u8>>(),
            1 => {
                let mut b = valid.clone();
                for _ in 0..rng.random_range(1..4) {
                    let at = rng.random_range(0..b.len());
                    b[at] = rng.random();
                }
                b
            }
            _ => {
                // Mutations behind a valid checksum reach the metadata and the weights.
                let mut b = valid[..valid.len() - 4].to_vec();
                let at = rng.random_range(8..b.len().min(400));
                b[at] = rng.random();
                let crc = crc32fast::hash(&b);
                b.extend_from_slice(&crc.to_le_bytes());
                b
            }
        };
        let r = upload(&router, 1, body).await;
        assert!(r.status.is_client_error() || r.status == StatusCode::CREATED, "{i}: {} {:?}", r.status, r.body);
    }
    // Still answering, and the good model uploads and infers.
    let id = upload_ok(&router, 2, &good).await;
    assert_eq!(infer(&router, &id).await.status, StatusCode::OK);
}

#[tokio::test]
async fn the_count_cap_the_client_share_and_the_time_to_live_hold() {
    // Four models, a client holding one: its second upload replaces its first.
    let router = app(state(UploadLimits::new(4, 1 << 20, Duration::from_millis(1500))));
    let first = upload_ok(&router, 1, &mlp("a", 1)).await;
    let second = upload_ok(&router, 1, &mlp("b", 2)).await;
    assert_eq!(infer(&router, &first).await.error(), "unknown_model", "replaced by the client's newer upload");
    assert_eq!(infer(&router, &second).await.status, StatusCode::OK);
    for client in 2..=4 {
        upload_ok(&router, client, &mlp("c", u64::from(client))).await;
    }
    let r = upload(&router, 5, mlp("e", 5).to_bytes()).await;
    assert_eq!((r.status, r.error().as_str()), (StatusCode::SERVICE_UNAVAILABLE, "model_store_full"));
    assert_eq!(r.headers[header::RETRY_AFTER], "1");
    // Use keeps a model alive; left alone, it expires.
    for _ in 0..3 {
        tokio::time::sleep(Duration::from_millis(700)).await;
        assert_eq!(infer(&router, &second).await.status, StatusCode::OK, "renewed by each use");
    }
    tokio::time::sleep(Duration::from_millis(1700)).await;
    assert_eq!(infer(&router, &second).await.error(), "unknown_model", "expired");
    upload_ok(&router, 5, &mlp("e", 5)).await; // the expired ones made room

    // Off: 404, and nothing in the bound.
    let off = state(UploadLimits::new(0, 1 << 20, Duration::from_secs(1)));
    assert_eq!(off.memory_bound().uploads, 0);
    let r = upload(&app(off), 1, mlp("x", 1).to_bytes()).await;
    assert_eq!(r.status, StatusCode::NOT_FOUND);
    // The bound counts every model at its largest.
    let on = state(UploadLimits::default());
    assert_eq!(on.memory_bound().uploads, 16 * ((8 << 20) + MODEL_OVERHEAD_BYTES));
}

#[tokio::test]
async fn a_retried_upload_with_its_idempotency_key_creates_nothing() {
    let router = app(state(UploadLimits::default()));
    let bytes = mlp("same", 1).to_bytes();
    let with_key = || {
        let mut r = upload_req(bytes.clone());
        r.headers_mut().insert("idempotency-key", "0123456789abcdef0123456789abcdef".parse().unwrap());
        from(1, r)
    };
    let (a, b) = (send(&router, with_key()).await, send(&router, with_key()).await);
    assert_eq!((a.status, b.status), (StatusCode::CREATED, StatusCode::CREATED));
    assert_eq!(a.json()["id"], b.json()["id"]);
    assert_eq!(b.headers["idempotent-replayed"], "true");
    assert!(a.headers.get("idempotent-replayed").is_none());
}

/// A server on a loopback port whose uploaded models live in Redis at `url`.
async fn replica(url: &str, uploads: UploadLimits) -> SocketAddr {
    let redis = Redis::connect(url).await.unwrap();
    let state = state(uploads).with_shared_state(redis);
    // The bound counts the replica's cache of parses, not the store in Redis.
    let cached = more_server::state_store::models::CACHED_MODELS.min(uploads.max_models);
    assert_eq!(state.memory_bound().uploads, cached * uploads.model_memory());
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let listener = more_server::conn::BoundedListener::new(listener, 64, Duration::from_secs(30));
    tokio::spawn(async move {
        axum::serve(listener, app(state).into_make_service_with_connect_info::<ClientAddr>()).await.unwrap()
    });
    addr
}

#[tokio::test]
async fn two_replicas_on_one_redis_share_uploaded_models() {
    let Some(server) = RedisServer::start() else { return };
    let limits = UploadLimits::new(4, 1 << 20, Duration::from_secs(2));
    let (a, b) = (replica(&server.url, limits).await, replica(&server.url, limits).await);
    let model = mlp("shared", 1);
    let r = request(a, "POST", "/api/v1/models", Some(MEDIA_TYPE), &model.to_bytes(), None).await;
    assert_eq!(r.status, 201, "{}", String::from_utf8_lossy(&r.body));
    let id = serde_json::from_slice::<serde_json::Value>(&r.body).unwrap()["id"].as_str().unwrap().to_string();
    let key = SecretKey::from_seed(5, KeyOptions::default()).unwrap();
    let body = more_core::encode(&key.encrypt_tensor::<f32>(&digit(5).view()).unwrap());
    let path = format!("/api/v1/models/{id}/infer");
    let ct = Some(more_core::codec::MEDIA_TYPE);
    let on_a = request(a, "POST", &path, ct, &body, None).await;
    let on_b = request(b, "POST", &path, ct, &body, None).await;
    assert_eq!((on_a.status, on_b.status), (200, 200), "{}", String::from_utf8_lossy(&on_b.body));
    assert_eq!(on_a.body, on_b.body, "the replica that parsed it from Redis answers the same");
    // Use on either replica renews it in Redis; left alone it expires there, for both.
    for _ in 0..3 {
        tokio::time::sleep(Duration::from_millis(900)).await;
        assert_eq!(request(b, "POST", &path, ct, &body, None).await.status, 200);
    }
    assert_eq!(request(a, "POST", &path, ct, &body, None).await.status, 200, "A's cached parse, still in Redis");
    // Deleted through B: unknown on A, whose cached parse is not used.
    let gone = request(b, "DELETE", &format!("/api/v1/models/{id}"), None, &[], None).await;
    assert_eq!(gone.status, 204);
    assert_eq!(request(a, "POST", &path, ct, &body, None).await.status, 404);
    // The per-client share holds across replicas: this client (127.0.0.1) holds one model at a time, so
    // its upload through A replaces the one it made through B.
    let upload_to = |addr| async move {
        let r = request(addr, "POST", "/api/v1/models", Some(MEDIA_TYPE), &mlp("shared", 1).to_bytes(), None).await;
        assert_eq!(r.status, 201);
        serde_json::from_slice::<serde_json::Value>(&r.body).unwrap()["id"].as_str().unwrap().to_string()
    };
    let older = upload_to(b).await;
    let newer = upload_to(a).await;
    let infer_on = |addr, id: String| {
        let body = body.clone();
        async move { request(addr, "POST", &format!("/api/v1/models/{id}/infer"), ct, &body, None).await.status }
    };
    assert_eq!(infer_on(b, older).await, 404, "replaced");
    assert_eq!(infer_on(b, newer).await, 200);
    drop(server);
    tokio::time::sleep(Duration::from_millis(200)).await;
    let r = request(a, "POST", "/api/v1/models", Some(MEDIA_TYPE), &model.to_bytes(), None).await;
    assert_eq!(r.status, 503, "Redis down: {}", String::from_utf8_lossy(&r.body));
}
