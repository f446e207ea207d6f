//! The MNIST sample data the training page offers (`--training-data`): slices in the labelled-image format,
//! equal to the IDX files; bad queries are 400 JSON; a server without the data answers 404.

mod common;

use axum::http::{StatusCode, header};

use more_nn::idx::{ImageSet, LABELLED_IMAGES_MEDIA_TYPE, load_mnist};
use more_server::training_data::{MAX_OFFERED, TrainingData};
use more_server::{EngineConfig, Limits, app};

use common::{get, send, state_with};

/// The shared data: env `MORE_DATA`, else `../shared/data` beside the repository.
fn data_dir() -> std::path::PathBuf {
    std::env::var_os("MORE_DATA").map_or_else(
        || std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../../../shared/data"),
        std::path::PathBuf::from,
    )
}

async fn fetch(router: &axum::Router, uri: &str) -> (StatusCode, Option<String>, Vec<u8>) {
    let a = send(router, get(uri)).await;
    let ct = a.headers.get(header::CONTENT_TYPE).map(|v| v.to_str().unwrap().to_string());
    (a.status, ct, a.body.to_vec())
}

fn error_code(body: &[u8]) -> String {
    let v: serde_json::Value = serde_json::from_slice(body).unwrap();
    assert!(v["message"].as_str().is_some_and(|m| !m.is_empty()), "{v}");
    v["error"].as_str().unwrap().to_string()
}

#[tokio::test]
async fn mnist_slices_match_the_idx_files_and_bad_queries_are_refused() {
    let dir = data_dir();
    let data = TrainingData::load_mnist(&dir).expect("MNIST must be in ../shared/data/mnist");
    assert_eq!(data.bytes(), 2 * MAX_OFFERED * (28 * 28 + 1));
    let state = state_with(EngineConfig::default(), Limits::default()).with_training_data(data);
    assert!(state.memory_bound().to_string().contains("sample data 15.0"), "{}", state.memory_bound());
    let router = app(state);

    let (status, ct, body) = fetch(&router, "/api/v1/training/samples/mnist?split=test&offset=100&count=50").await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(ct.as_deref(), Some(LABELLED_IMAGES_MEDIA_TYPE));
    let got = ImageSet::from_bytes(&body, 1 << 20).unwrap();
    let want = load_mnist(&dir, "test").unwrap().range(100, 50);
    assert_eq!(got.labels, want.labels);
    assert_eq!(got.images, want.images);

    // Defaults: 1,000 training images from the start; a count past the end is clipped.
    let (_, _, body) = fetch(&router, "/api/v1/training/samples/mnist").await;
    assert_eq!(ImageSet::from_bytes(&body, 1 << 20).unwrap().len(), 1000);
    let (_, _, body) = fetch(&router, "/api/v1/training/samples/mnist?offset=9990&count=100").await;
    assert_eq!(ImageSet::from_bytes(&body, 1 << 20).unwrap().len(), 10);

    for bad in [
        "?split=validation",
        "?count=0",
        "?count=10001",
        "?count=-1",
        "?count=lots",
        "?offset=10000",
        "?offset=99999999999999999999999",
    ] {
        let (status, ct, body) = fetch(&router, &format!("/api/v1/training/samples/mnist{bad}")).await;
        assert_eq!(status, StatusCode::BAD_REQUEST, "{bad}");
        assert_eq!(ct.as_deref(), Some("application/json"), "{bad}");
        assert_eq!(error_code(&body), "bad_query", "{bad}");
    }
}

#[tokio::test]
async fn without_training_data_the_route_says_so() {
    let router = app(state_with(EngineConfig::default(), Limits::default()));
    let (status, _, body) = fetch(&router, "/api/v1/training/samples/mnist").await;
    assert_eq!(status, StatusCode::NOT_FOUND);
    assert_eq!(error_code(&body), "no_training_data");
}

#[tokio::test]
async fn a_slice_reserves_its_size_from_the_memory_budget_until_sent() {
    let data = TrainingData::load_mnist(&data_dir()).expect("MNIST must be in ../shared/data/mnist");
    // A 4 MiB budget: 1,000 images (0.75 MiB) fit, 10,000 (7.5 MiB) do not.
    let state = state_with(EngineConfig::default(), Limits { memory_budget: 4 << 20, ..Limits::default() })
        .with_training_data(data);
    let budget = state.budget().clone();
    let router = app(state);
    let (status, _, body) = fetch(&router, "/api/v1/training/samples/mnist?count=10000").await;
    assert_eq!((status, error_code(&body).as_str()), (StatusCode::SERVICE_UNAVAILABLE, "overloaded"));
    let (status, _, body) = fetch(&router, "/api/v1/training/samples/mnist?count=1000").await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(ImageSet::from_bytes(&body, 1 << 20).unwrap().len(), 1000);
    assert_eq!(budget.in_use(), 0, "released once sent");
}
