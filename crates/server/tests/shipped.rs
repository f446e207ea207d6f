//! The shipped models (`models/`) served by the real router: encrypted MNIST test images round-trip
//! through `/infer` and decrypt to the plaintext model's answer.

use std::path::PathBuf;

use axum::body::Body;
use axum::http::{Request, StatusCode, header};
use http_body_util::BodyExt;
use more_core::codec::MEDIA_TYPE;
use more_core::{KeyOptions, SecretKey};
use more_nn::metrics::argmax;
use more_server::{AppState, EncryptedForm, EngineConfig, Limits, Registry, app};
use ndarray::{ArrayD, Axis, IxDyn};
use tower::ServiceExt;

fn repo() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../..")
}

#[tokio::test]
async fn shipped_mnist_models_answer_encrypted_test_images() {
    for form in [EncryptedForm::Coefficients, EncryptedForm::FourPlanes] {
        mnist_in(form).await;
    }
}

/// The shipped MNIST models on 8 encrypted test images, the server in `form`; the listing and the
/// `x-more-encrypted-form` header say which form ran and mark the coefficient conversion as using the 2x2
/// structure.
async fn mnist_in(form: EncryptedForm) {
    let registry = Registry::load_dir(repo().join("models")).expect("the bundled models in models/ load");
    let data = std::env::var("MORE_DATA").map_or_else(|_| repo().join("../shared/data"), PathBuf::from);
    let images = more_nn::idx::read_idx(data.join("mnist/t10k-images-idx3-ubyte.gz"))
        .unwrap_or_else(|e| panic!("MNIST test set missing ({e}); expected under {}", data.display()));
    let labels = more_nn::idx::read_idx(data.join("mnist/t10k-labels-idx1-ubyte.gz")).unwrap();
    let mnist: Vec<_> = registry.iter().filter(|m| m.meta().task == "mnist").cloned().collect();
    assert!(!mnist.is_empty(), "no MNIST model in models/");
    let router = app(AppState::new(
        registry,
        EngineConfig { workers: 2, queue: 16, max_batch_samples: 8, form },
        Limits::default(),
    ));
    let listing = router.clone().oneshot(Request::get("/api/v1/models").body(Body::empty()).unwrap()).await.unwrap();
    let listing: serde_json::Value =
        serde_json::from_slice(&listing.into_body().collect().await.unwrap().to_bytes()).unwrap();
    for entry in listing["models"].as_array().unwrap() {
        let ops = entry["operations"].as_array().unwrap();
        let conversion = ops.iter().any(|o| o["name"] == "coefficient form (2x2 structure)" && o["ring_only"] == false);
        assert_eq!(conversion, form == EncryptedForm::Coefficients, "{entry}");
        assert_eq!(entry["encrypted_form"], form.name());
        let layers = entry["layers_ring_only"].as_bool().unwrap();
        assert_eq!(entry["ring_only"], layers && form == EncryptedForm::FourPlanes, "{entry}");
        if entry["id"] == "mnist-cnn-square" {
            assert!(layers, "square is ring-only");
        }
    }
    let n = 8;
    for model in mnist {
        let id = model.meta().id.clone();
        let mut x: Vec<f32> = images.slice_axis(Axis(0), (0..n).into()).iter().map(|&p| f32::from(p)).collect();
        model.meta().preprocessing.normalize(&mut x).unwrap();
        let mut shape = vec![n];
        shape.extend_from_slice(model.input_shape());
        let x = ArrayD::from_shape_vec(IxDyn(&shape), x).unwrap();
        let key = SecretKey::generate(KeyOptions::default()).unwrap();
        let body = more_core::encode(&key.encrypt_tensor::<f32>(&x.view()).unwrap());
        let req = Request::post(format!("/api/v1/models/{id}/infer"))
            .header(header::CONTENT_TYPE, MEDIA_TYPE)
            .body(Body::from(body))
            .unwrap();
        let res = router.clone().oneshot(req).await.unwrap();
        assert_eq!(res.status(), StatusCode::OK, "{id}");
        assert_eq!(res.headers()["x-more-encrypted-form"], form.name());
        let bytes = res.into_body().collect().await.unwrap().to_bytes();
        let got = key.decrypt_tensor(&more_core::decode::<f32>(&bytes, 1 << 20).unwrap());
        let want = model.forward_plain(x.view()).unwrap();
        assert_eq!(got.shape(), &[n, 10]);
        let mut correct = 0;
        for i in 0..n {
            let (g, w) = (got.index_axis(Axis(0), i), want.index_axis(Axis(0), i));
            let diff = g.iter().zip(w.iter()).map(|(a, b)| (a - b).abs()).fold(0f32, f32::max);
            assert!(diff < 1e-3, "{id} {form:?} image {i}: max logit diff {diff}");
            assert_eq!(argmax(g.iter()), argmax(w.iter()), "{id} image {i}");
            correct += usize::from(argmax(g.iter()) == usize::from(labels[[i]]));
        }
        assert!(correct >= n - 1, "{id}: {correct}/{n} correct");
    }
}

#[tokio::test]
async fn every_shipped_model_round_trips_a_batch() {
    let registry = Registry::load_dir(repo().join("models")).expect("the bundled models in models/ load");
    let models: Vec<_> = registry.iter().cloned().collect();
    let router = app(AppState::new(
        registry,
        EngineConfig { workers: 2, queue: 16, max_batch_samples: 8, ..EngineConfig::default() },
        Limits::default(),
    ));
    for (k, model) in models.iter().enumerate() {
        let id = &model.meta().id;
        let mut shape = vec![2];
        shape.extend_from_slice(model.input_shape());
        let n: usize = shape.iter().product();
        // Inputs in the model's normalised range: raw values in [0, 1] through its preprocessing.
        let mut x: Vec<f32> = (0..n).map(|i| ((i * 7919 + k * 31) % 1000) as f32 / 1000.0).collect();
        let pre = &model.meta().preprocessing;
        if pre.scale > 0.0 && pre.scale < 1.0 {
            x.iter_mut().for_each(|v| *v /= pre.scale);
        }
        pre.normalize(&mut x).unwrap();
        let x = ArrayD::from_shape_vec(IxDyn(&shape), x).unwrap();
        let key = SecretKey::from_seed(k as u64 + 1, KeyOptions::default()).unwrap();
        let req = Request::post(format!("/api/v1/models/{id}/infer"))
            .header(header::CONTENT_TYPE, MEDIA_TYPE)
            .body(Body::from(more_core::encode(&key.encrypt_tensor::<f32>(&x.view()).unwrap())))
            .unwrap();
        let res = router.clone().oneshot(req).await.unwrap();
        assert_eq!(res.status(), StatusCode::OK, "{id}");
        let bytes = res.into_body().collect().await.unwrap().to_bytes();
        let got = key.decrypt_tensor(&more_core::decode::<f32>(&bytes, 1 << 24).unwrap());
        let want = model.forward_plain(x.view()).unwrap();
        assert_eq!(got.shape(), &[2, model.output_len()], "{id}");
        for (g, w) in got.iter().zip(want.iter()) {
            assert!((g - w).abs() <= 1e-3 * w.abs().max(1.0), "{id}: decrypted {g} vs plaintext {w}");
        }
    }
}
