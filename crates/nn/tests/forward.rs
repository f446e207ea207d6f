//! `forward_encrypted(encrypt(x))` decrypts to `forward_plain(x)` for every layer type; bad inputs and
//! corrupt model files are errors, not panics.

use ndarray::{Array, ArrayD, IxDyn};
use proptest::prelude::*;
use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;

use more_core::{KeyOptions, SecretKey};
use more_nn::{ElementFunction, Layer, LayerSpec, Model, ModelMeta};

fn random(shape: &[usize], rng: &mut ChaCha8Rng, scale: f32) -> ArrayD<f32> {
    Array::from_shape_fn(IxDyn(shape), |_| rng.random_range(-scale..scale))
}

fn conv(i: usize, o: usize, k: usize, stride: usize, padding: usize, rng: &mut ChaCha8Rng) -> Layer {
    let s = 1.0 / ((i * k * k) as f32).sqrt();
    let spec = LayerSpec::Conv2d { in_channels: i, out_channels: o, kernel: [k, k], stride, padding };
    spec.build(vec![random(&[o, i, k, k], rng, s), random(&[o], rng, 0.1)]).unwrap()
}

fn dense(i: usize, o: usize, rng: &mut ChaCha8Rng) -> Layer {
    let s = 1.0 / (i as f32).sqrt();
    LayerSpec::Dense { inputs: i, outputs: o }.build(vec![random(&[i, o], rng, s), random(&[o], rng, 0.1)]).unwrap()
}

/// Runs both paths and returns the largest absolute difference after decryption.
fn max_diff(model: &Model, x: &ArrayD<f32>, key_seed: u64) -> f32 {
    let key = SecretKey::from_seed(key_seed, KeyOptions::default()).unwrap();
    let plain = model.forward_plain(x.view()).unwrap();
    let enc = model.forward_encrypted(&key.encrypt_tensor(&x.view()).unwrap()).unwrap();
    let dec = key.decrypt_tensor(&enc);
    assert_eq!(dec.shape(), plain.shape());
    dec.iter().zip(plain.iter()).map(|(a, b)| (a - b).abs() / b.abs().max(1.0)).fold(0.0, f32::max)
}

/// A parameter-free layer.
fn layer(spec: LayerSpec) -> Layer {
    Layer::parameter_free(spec).unwrap()
}

fn act(a: usize) -> Layer {
    let function =
        [ElementFunction::Square, ElementFunction::Relu, ElementFunction::Sigmoid, ElementFunction::Tanh][a % 4];
    layer(LayerSpec::Activation { function })
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 24, ..ProptestConfig::default() })]

    #[test]
    fn conv_pool_dense_agree(
        seed in 0u64..1000, n in 1usize..4, c in 1usize..3, hw in 6usize..11, o in 1usize..5,
        k in 1usize..4, stride in 1usize..3, padding in 0usize..2, a in 0usize..4, maxpool in any::<bool>(),
        softmax in any::<bool>(),
    ) {
        let mut rng = ChaCha8Rng::seed_from_u64(seed);
        let c1 = conv(c, o, k, stride, padding, &mut rng);
        let shape1 = c1.output_shape(&[c, hw, hw]).unwrap();
        let mut layers = vec![c1, act(a)];
        let mut shape = shape1.clone();
        if shape1[1] >= 2 {
            layers.push(layer(if maxpool {
                LayerSpec::MaxPool { size: 2, stride: 2 }
            } else {
                LayerSpec::AvgPool { size: 2, stride: 2 }
            }));
            shape = layers.last().unwrap().output_shape(&shape1).unwrap();
        }
        layers.push(layer(LayerSpec::Flatten));
        layers.push(dense(shape.iter().product(), 3, &mut rng));
        if softmax {
            layers.push(layer(LayerSpec::Softmax));
        }
        let model = Model::new(ModelMeta::new("t", "test"), &[c, hw, hw], layers).unwrap();
        let x = random(&[n, c, hw, hw], &mut rng, 1.0);
        let d = max_diff(&model, &x, seed);
        prop_assert!(d < 1e-3, "max relative diff {d}");
    }

    #[test]
    fn each_activation_agrees(seed in 0u64..1000, n in 1usize..5, f in 1usize..20, a in 0usize..4) {
        let mut rng = ChaCha8Rng::seed_from_u64(seed);
        let model = Model::new(ModelMeta::new("t", "test"), &[f], vec![act(a)]).unwrap();
        let x = random(&[n, f], &mut rng, 3.0);
        let d = max_diff(&model, &x, seed);
        prop_assert!(d < 1e-4, "max relative diff {d}");
    }
}

#[test]
fn wrong_input_shapes_are_errors() {
    let mut rng = ChaCha8Rng::seed_from_u64(1);
    let model = Model::new(
        ModelMeta::new("t", "test"),
        &[1, 8, 8],
        vec![conv(1, 2, 3, 1, 0, &mut rng), layer(LayerSpec::Flatten)],
    )
    .unwrap();
    for shape in [vec![1, 8, 8], vec![2, 1, 8, 9], vec![2, 2, 8, 8], vec![1, 1, 1, 8, 8]] {
        let x = ArrayD::<f32>::zeros(IxDyn(&shape));
        assert!(model.forward_plain(x.view()).is_err(), "{shape:?}");
        let key = SecretKey::from_seed(3, KeyOptions::default()).unwrap();
        let e = key.encrypt_tensor(&x.view()).unwrap();
        assert!(model.forward_encrypted(&e).is_err(), "{shape:?}");
    }
}

#[test]
fn invalid_models_are_rejected() {
    let mut rng = ChaCha8Rng::seed_from_u64(2);
    // Dense on a 3-D input, conv kernel larger than the input.
    assert!(Model::new(ModelMeta::new("t", "t"), &[1, 4, 4], vec![dense(16, 2, &mut rng)]).is_err());
    assert!(
        Model::new(
            ModelMeta::new("t", "t"),
            &[1, 2, 2],
            vec![conv(1, 1, 3, 1, 0, &mut rng), layer(LayerSpec::Flatten)]
        )
        .is_err()
    );
    assert!(Model::new(ModelMeta::new("t", "t"), &[1, 4, 4], vec![conv(1, 1, 3, 1, 0, &mut rng)]).is_err());
}

#[test]
fn model_files_round_trip_and_corruption_is_detected() {
    let mut rng = ChaCha8Rng::seed_from_u64(4);
    let layers = vec![
        conv(1, 3, 3, 2, 1, &mut rng),
        layer(LayerSpec::Activation { function: ElementFunction::Relu }),
        layer(LayerSpec::MaxPool { size: 2, stride: 2 }),
        layer(LayerSpec::Flatten),
        dense(12, 4, &mut rng),
        layer(LayerSpec::Softmax),
    ];
    let mut meta = ModelMeta::new("roundtrip", "test");
    meta.metrics.insert("test_accuracy".into(), 0.5);
    let model = Model::new(meta, &[1, 8, 8], layers).unwrap();
    let bytes = model.to_bytes();
    let back = Model::from_bytes(&bytes).unwrap();
    assert_eq!(back.layers(), model.layers());
    assert_eq!(back.meta().metrics["test_accuracy"], 0.5);
    assert_eq!(back.meta().architecture, model.meta().architecture);
    assert_eq!(back.output_len(), 4);

    // Every single-byte flip and every truncation is an error.
    for i in (0..bytes.len()).step_by(7) {
        let mut b = bytes.clone();
        b[i] ^= 0x20;
        assert!(Model::from_bytes(&b).is_err(), "flip at {i}");
    }
    for len in (0..bytes.len()).step_by(11) {
        assert!(Model::from_bytes(&bytes[..len]).is_err(), "truncated to {len}");
    }
    let err = Model::from_bytes(b"hello world, not a model").unwrap_err().to_string();
    assert!(err.contains("magic"), "{err}");
    let mut b = bytes.clone();
    let last = b.len() - 9;
    b[last] ^= 1;
    assert!(Model::from_bytes(&b).unwrap_err().to_string().contains("checksum"));
}

/// A model file around a JSON header and weight bytes, with a valid checksum (for hostile files).
fn assemble(json: &str, weights: &[u8]) -> Vec<u8> {
    more_nn::model::frame(json.as_bytes(), weights)
}

#[test]
fn well_checksummed_but_invalid_headers_are_errors() {
    let meta = serde_json::to_string(&ModelMeta::new("x", "t")).unwrap();
    let with = |input: &str, layers: &str| {
        format!(
            r#"{{"meta":{},"layers":{layers}}}"#,
            meta.replace(r#""input_shape":[]"#, &format!(r#""input_shape":{input}"#))
        )
    };
    let cases = [
        with("[4]", r#"[{"type":"dense","inputs":1099511627776,"outputs":1099511627776}]"#),
        with("[4]", r#"[{"type":"dense","inputs":4,"outputs":2}]"#), // weights missing
        with(
            "[1,4,4]",
            r#"[{"type":"conv2d","in_channels":1,"out_channels":1,"kernel":[0,0],"stride":1,"padding":0},{"type":"flatten"}]"#,
        ),
        with(
            "[1,4,4]",
            r#"[{"type":"conv2d","in_channels":1,"out_channels":1,"kernel":[1,1],"stride":0,"padding":0},{"type":"flatten"}]"#,
        ),
        with("[1,4,4]", r#"[{"type":"max_pool","size":0,"stride":1},{"type":"flatten"}]"#),
        with("[1,4,4]", r#"[{"type":"avg_pool","size":2,"stride":0},{"type":"flatten"}]"#),
        with("[1,4,4]", r#"[{"type":"softmax"}]"#),
        with("[]", r#"[]"#),
        with("[0]", r#"[]"#),
        with("[4]", r#"[{"type":"unknown"}]"#),
        // Shapes whose element counts overflow, and layers with empty outputs: errors, never a panic.
        with("[4294967296,4294967296,2]", r#"[{"type":"flatten"}]"#),
        with(
            "[1,1,1]",
            r#"[{"type":"conv2d","in_channels":1,"out_channels":0,"kernel":[1,1],"stride":1,"padding":4611686018427387904},{"type":"flatten"}]"#,
        ),
        with(
            "[1,1,1]",
            r#"[{"type":"conv2d","in_channels":1,"out_channels":0,"kernel":[4294967296,4294967296],"stride":1,"padding":2147483648},{"type":"flatten"}]"#,
        ),
        with(
            "[1,4,4]",
            r#"[{"type":"max_pool","size":2,"stride":2},{"type":"flatten"},{"type":"dense","inputs":4,"outputs":0}]"#,
        ),
        "{}".to_string(),
        "not json".to_string(),
    ];
    for json in &cases {
        let err = Model::from_bytes(&assemble(json, &[])).unwrap_err();
        assert!(err.to_string().contains("invalid model file"), "{json}: {err}");
    }
    // A valid header with non-finite weights.
    let json = with("[2]", r#"[{"type":"dense","inputs":2,"outputs":1}]"#);
    let mut w = Vec::new();
    for v in [1.0f32, f32::NAN, 0.0] {
        w.extend_from_slice(&v.to_le_bytes());
    }
    assert!(Model::from_bytes(&assemble(&json, &w)).is_err());
    w[4..8].copy_from_slice(&2.0f32.to_le_bytes());
    let m = Model::from_bytes(&assemble(&json, &w)).unwrap();
    assert_eq!(m.forward_plain(ndarray::arr2(&[[1.0f32, 1.0]]).into_dyn().view()).unwrap()[[0, 0]], 3.0);
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 64, ..ProptestConfig::default() })]

    #[test]
    fn random_bytes_never_panic(bytes in proptest::collection::vec(any::<u8>(), 0..200), magic in any::<bool>()) {
        let mut b = if magic { b"MORENN01".to_vec() } else { vec![] };
        b.extend_from_slice(&bytes);
        prop_assert!(Model::from_bytes(&b).is_err());
    }
}
