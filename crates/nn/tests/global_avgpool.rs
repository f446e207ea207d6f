//! The global average pooling layer (`crates/nn/src/layers/global_pool.rs`): plaintext forward against
//! the definition, encrypted forward against plaintext, backward against finite differences, ring-only
//! flag and model file round trip.

use ndarray::{Array, ArrayD, Axis, IxDyn};
use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;

use more_core::{KeyOptions, SecretKey};
use more_nn::layers::LayerKind;
use more_nn::layers::global_pool::GlobalAvgPool;
use more_nn::train::Net;
use more_nn::{ElementFunction, Layer, LayerSpec, Model, ModelMeta, Plain};

fn random(shape: &[usize], rng: &mut ChaCha8Rng, scale: f32) -> ArrayD<f32> {
    Array::from_shape_fn(IxDyn(shape), |_| rng.random_range(-scale..scale))
}

/// conv 2->3 3x3 pad 1, `act`, global average pooling, dense 3->4, with random weights.
fn cnn(act: ElementFunction, rng: &mut ChaCha8Rng) -> Model {
    let conv = LayerSpec::Conv2d { in_channels: 2, out_channels: 3, kernel: [3, 3], stride: 1, padding: 1 };
    let layers = vec![
        conv.build(vec![random(&[3, 2, 3, 3], rng, 0.4), random(&[3], rng, 0.1)]).unwrap(),
        Layer::parameter_free(LayerSpec::Activation { function: act }).unwrap(),
        Layer::parameter_free(LayerSpec::GlobalAvgPool).unwrap(),
        LayerSpec::Dense { inputs: 3, outputs: 4 }
            .build(vec![random(&[3, 4], rng, 0.5), random(&[4], rng, 0.1)])
            .unwrap(),
    ];
    Model::new(ModelMeta::new("gap", "test"), &[2, 6, 5], layers).unwrap()
}

#[test]
fn plaintext_forward_is_the_channel_mean() {
    let mut rng = ChaCha8Rng::seed_from_u64(1);
    let model = Model::new(
        ModelMeta::new("gap", "test"),
        &[3, 4, 5],
        vec![Layer::parameter_free(LayerSpec::GlobalAvgPool).unwrap()],
    )
    .unwrap();
    assert_eq!(model.output_len(), 3);
    let x = random(&[2, 3, 4, 5], &mut rng, 2.0);
    let y = model.forward_plain(x.view()).unwrap();
    let want = x.mean_axis(Axis(3)).unwrap().mean_axis(Axis(2)).unwrap();
    assert_eq!(y.shape(), &[2, 3]);
    for (a, b) in y.iter().zip(want.iter()) {
        assert!((a - b).abs() < 1e-6, "{a} vs {b}");
    }
    // A per-sample input that is not [C, H, W] is refused when the model is built.
    let flat = Model::new(
        ModelMeta::new("gap", "test"),
        &[12],
        vec![Layer::parameter_free(LayerSpec::GlobalAvgPool).unwrap()],
    );
    assert!(flat.is_err());
}

#[test]
fn encrypted_forward_decrypts_to_the_plaintext_forward() {
    for seed in 0..6u64 {
        let mut rng = ChaCha8Rng::seed_from_u64(seed);
        let act = [ElementFunction::Square, ElementFunction::Relu][seed as usize % 2];
        let model = cnn(act, &mut rng);
        let x = random(&[3, 2, 6, 5], &mut rng, 1.0);
        let key = SecretKey::from_seed(seed + 10, KeyOptions::default()).unwrap();
        let plain = model.forward_plain(x.view()).unwrap();
        let dec = key.decrypt_tensor(&model.forward_encrypted(&key.encrypt_tensor(&x.view()).unwrap()).unwrap());
        assert_eq!(dec.shape(), plain.shape());
        for (a, b) in dec.iter().zip(plain.iter()) {
            assert!((a - b).abs() <= 1e-4 * b.abs().max(1.0), "seed {seed}: {a} vs {b}");
        }
    }
}

#[test]
fn backward_matches_finite_differences() {
    let mut rng = ChaCha8Rng::seed_from_u64(3);
    // The layer alone: ∂(Σ y ⊙ r)/∂x against central differences, on every input value.
    let x = random(&[2, 3, 4, 3], &mut rng, 1.0);
    let (y, saved) = GlobalAvgPool.forward(&Plain, &[], &x).unwrap();
    let r = random(y.shape(), &mut rng, 1.0);
    let (dx, dparams) = GlobalAvgPool.backward(&Plain, &[], saved, r.clone()).unwrap();
    assert!(dparams.is_empty());
    assert_eq!(dx.shape(), x.shape());
    let loss = |x: &ArrayD<f32>| -> f64 {
        let (y, _) = GlobalAvgPool.forward(&Plain, &[], x).unwrap();
        y.iter().zip(r.iter()).map(|(&a, &b)| f64::from(a) * f64::from(b)).sum()
    };
    let eps = 1e-2f32;
    for j in 0..x.len() {
        let mut up = x.clone();
        up.as_slice_mut().unwrap()[j] += eps;
        let mut down = x.clone();
        down.as_slice_mut().unwrap()[j] -= eps;
        let numeric = (loss(&up) - loss(&down)) / (2.0 * f64::from(eps));
        let analytic = f64::from(dx.as_slice().unwrap()[j]);
        assert!((numeric - analytic).abs() < 1e-4, "x[{j}]: numeric {numeric} vs analytic {analytic}");
    }

    // In a network: the convolution's weight gradient flows through the pooling's backward pass.
    let specs = [
        LayerSpec::Conv2d { in_channels: 1, out_channels: 2, kernel: [3, 3], stride: 1, padding: 1 },
        LayerSpec::Activation { function: ElementFunction::Tanh },
        LayerSpec::GlobalAvgPool,
        LayerSpec::Dense { inputs: 2, outputs: 3 },
    ];
    let mut net = Net::new(&Plain, &[1, 5, 5], &specs, &mut rng).unwrap();
    let x = random(&[4, 1, 5, 5], &mut rng, 1.0);
    let (out, tape) = net.forward(&Plain, &x).unwrap();
    let r = random(out.shape(), &mut rng, 1.0);
    let grads = net.backward(&Plain, tape, r.clone()).unwrap();
    let loss = |net: &Net<Plain>| -> f64 {
        let o = net.predict(&Plain, &x).unwrap();
        o.iter().zip(r.iter()).map(|(&a, &b)| f64::from(a) * f64::from(b)).sum()
    };
    let eps = 2e-3f32;
    for j in 0..grads[0].len() {
        let orig = net.params()[0].as_slice().unwrap()[j];
        net.params_mut()[0].as_slice_mut().unwrap()[j] = orig + eps;
        let up = loss(&net);
        net.params_mut()[0].as_slice_mut().unwrap()[j] = orig - eps;
        let down = loss(&net);
        net.params_mut()[0].as_slice_mut().unwrap()[j] = orig;
        let numeric = (up - down) / (2.0 * f64::from(eps));
        let analytic = f64::from(grads[0].as_slice().unwrap()[j]);
        assert!(
            (numeric - analytic).abs() <= 1e-2 * analytic.abs().max(1.0),
            "conv weight {j}: {numeric} vs {analytic}"
        );
    }
}

#[test]
fn ring_only_flag_and_model_file() {
    let mut rng = ChaCha8Rng::seed_from_u64(4);
    let spec = LayerSpec::GlobalAvgPool;
    assert!(spec.is_ring_only());
    assert_eq!(spec.name(), "global_avgpool");
    assert_eq!(serde_json::to_string(&spec).unwrap(), r#"{"type":"global_avg_pool"}"#);
    // With a square activation the whole network is ring-only; with ReLU it is not.
    let square = cnn(ElementFunction::Square, &mut rng);
    assert!(square.is_ring_only());
    assert!(!cnn(ElementFunction::Relu, &mut rng).is_ring_only());
    let op = &square.meta().operations[2];
    assert_eq!((op.name.as_str(), op.ring_only), ("global_avgpool", true));
    // The model file round trip keeps the layer and its outputs.
    let back = Model::from_bytes(&square.to_bytes()).unwrap();
    assert_eq!(back.layers(), square.layers());
    let x = random(&[2, 2, 6, 5], &mut rng, 1.0);
    assert_eq!(back.forward_plain(x.view()).unwrap(), square.forward_plain(x.view()).unwrap());
}
