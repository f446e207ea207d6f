//! The committed fixtures (networks exported by PyTorch and scikit-learn, `fixtures/make.py`) import and
//! agree with the reference runtime's outputs (onnxruntime, recorded by the same script) on the first
//! 1,000 MNIST test images: on plaintext within `PLAIN_TOL`, and encrypted under MORE (coefficient form)
//! within `ENCRYPTED_TOL`, both relative to the largest output of each image. The comparison needs the
//! MNIST test images from the data directory (`MORE_DATA`, else `../shared/data`) and is skipped without
//! them; the import itself is checked always.

use std::path::{Path, PathBuf};

use more_core::{KeyOptions, SecretKey};
use more_nn::{EncryptedForm, Model};
use more_onnx::{ImportOptions, import};
use ndarray::{ArrayD, Axis, IxDyn};
use rand::SeedableRng;
use rand_chacha::ChaCha8Rng;
use serde_json::Value;

/// Plaintext: the model's outputs against the runtime's, relative to the image's largest output.
const PLAIN_TOL: f32 = 1e-5;
/// Encrypted (coefficient form), decrypted, same measure.
const ENCRYPTED_TOL: f32 = 1e-4;
/// Images encrypted per fixture (all 1,000 are compared on plaintext).
const ENCRYPTED_IMAGES: usize = 1000;

fn fixtures_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("fixtures")
}

fn manifest() -> Vec<Value> {
    let text = std::fs::read_to_string(fixtures_dir().join("fixtures.json")).unwrap();
    let v: Value = serde_json::from_str(&text).unwrap();
    v["fixtures"].as_array().unwrap().clone()
}

fn options(name: &str) -> ImportOptions {
    let mut o = ImportOptions::new(name, "mnist");
    o.preprocessing.kind = "mnist-digit".into();
    o.preprocessing.scale = 1.0 / 255.0;
    o.labels = (0..10).map(|d| d.to_string()).collect();
    o
}

fn load(name: &str) -> Model {
    let bytes = std::fs::read(fixtures_dir().join(format!("{name}.onnx"))).unwrap();
    import(&bytes, &options(name)).unwrap_or_else(|e| panic!("{name}: {e}")).model
}

fn expected(entry: &Value) -> ArrayD<f32> {
    let bytes = std::fs::read(fixtures_dir().join(entry["expected"].as_str().unwrap())).unwrap();
    let values: Vec<f32> = bytes.chunks_exact(4).map(|b| f32::from_le_bytes(b.try_into().unwrap())).collect();
    let n = entry["images"].as_u64().unwrap() as usize;
    ArrayD::from_shape_vec(IxDyn(&[n, values.len() / n]), values).unwrap()
}

/// The largest over images of `max |a − b| / max(|b|, 1e-3)` per image.
fn worst_relative(a: &ArrayD<f32>, b: &ArrayD<f32>) -> f32 {
    assert_eq!(a.shape(), b.shape());
    a.axis_iter(Axis(0))
        .zip(b.axis_iter(Axis(0)))
        .map(|(x, y)| {
            let scale = y.iter().fold(1e-3f32, |m, v| m.max(v.abs()));
            x.iter().zip(y).map(|(p, q)| (p - q).abs()).fold(0.0, f32::max) / scale
        })
        .fold(0.0, f32::max)
}

/// The first `n` MNIST test images in `[0, 255]`, shaped for `model`, if the data directory has them.
fn mnist_inputs(model: &Model, n: usize) -> Option<ArrayD<f32>> {
    let dir = std::env::var_os("MORE_DATA")
        .map(PathBuf::from)
        .unwrap_or_else(|| Path::new(env!("CARGO_MANIFEST_DIR")).join("../../../shared/data"));
    let set = more_nn::idx::load_mnist(&dir, "test").ok()?.take(n);
    let raw: Vec<f32> = set.images.iter().map(|&p| f32::from(p)).collect();
    let mut shape = vec![set.len()];
    shape.extend_from_slice(model.input_shape());
    let mut x = ArrayD::from_shape_vec(IxDyn(&shape), raw).unwrap();
    // The model's own preprocessing (scale 1/255, mean 0, std 1), as a client applies it.
    let norm = model.meta().preprocessing.normalization().unwrap();
    norm.apply(x.as_slice_mut().unwrap()).unwrap();
    Some(x)
}

#[test]
fn every_fixture_imports_with_the_layers_its_graph_names() {
    let entries = manifest();
    assert!(entries.len() >= 6, "fixtures from both exporters");
    for entry in &entries {
        let name = entry["name"].as_str().unwrap();
        let model = load(name);
        assert_eq!(model.output_len(), 10, "{name}");
        let shape: Vec<usize> =
            entry["input_shape"].as_array().unwrap().iter().map(|d| d.as_u64().unwrap() as usize).collect();
        assert_eq!(model.input_shape(), shape.as_slice(), "{name}");
        // The model file round-trips.
        let again = Model::from_bytes(&model.to_bytes()).unwrap();
        assert_eq!(again.to_bytes(), model.to_bytes(), "{name}");
    }
}

#[test]
fn fixtures_agree_with_the_reference_runtime_on_plaintext_and_encrypted() {
    let mut rng = ChaCha8Rng::seed_from_u64(3);
    for entry in manifest() {
        let name = entry["name"].as_str().unwrap();
        let model = load(name);
        let want = expected(&entry);
        let Some(x) = mnist_inputs(&model, want.shape()[0]) else {
            eprintln!("skipped: no MNIST test images in the data directory");
            return;
        };
        let plain = model.forward_plain(x.view()).unwrap();
        let worst = worst_relative(&plain, &want);
        eprintln!("{name}: plaintext worst relative difference {worst:.2e}");
        assert!(worst <= PLAIN_TOL, "{name}: plaintext {worst}");

        let x = x.slice_axis(Axis(0), (0..ENCRYPTED_IMAGES.min(x.shape()[0])).into()).to_owned();
        let key = SecretKey::generate_with_rng(KeyOptions::default(), &mut rng).unwrap();
        let enc = key.encrypt_tensor_with(&x.view(), &mut rng).unwrap();
        let out = model.forward_encrypted_in(&enc, EncryptedForm::Coefficients).unwrap();
        let dec = key.decrypt_tensor(&out);
        let want = want.slice_axis(Axis(0), (0..x.shape()[0]).into()).to_owned();
        let worst = worst_relative(&dec, &want);
        eprintln!("{name}: encrypted (coefficient form) worst relative difference {worst:.2e}");
        assert!(worst <= ENCRYPTED_TOL, "{name}: encrypted {worst}");
    }
}
