//! Plaintext vs encrypted forward pass of an MNIST-sized CNN (random weights), batch 1 and 64.

use criterion::{BenchmarkId, Criterion, criterion_group, criterion_main};
use ndarray::{Array, IxDyn};
use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;

use more_core::{KeyOptions, SecretKey};
use more_nn::train::Net;
use more_nn::{ElementFunction, LayerSpec, ModelMeta, Plain};

fn model() -> more_nn::Model {
    let relu = LayerSpec::Activation { function: ElementFunction::Relu };
    let specs = [
        LayerSpec::Conv2d { in_channels: 1, out_channels: 16, kernel: [5, 5], stride: 2, padding: 2 },
        relu.clone(),
        LayerSpec::Conv2d { in_channels: 16, out_channels: 16, kernel: [3, 3], stride: 2, padding: 1 },
        relu.clone(),
        LayerSpec::Flatten,
        LayerSpec::Dense { inputs: 784, outputs: 64 },
        relu,
        LayerSpec::Dense { inputs: 64, outputs: 10 },
    ];
    let net = Net::new(&Plain, &[1, 28, 28], &specs, &mut ChaCha8Rng::seed_from_u64(1)).unwrap();
    net.to_model(&Plain, ModelMeta::new("bench", "mnist")).unwrap()
}

fn forward(c: &mut Criterion) {
    let model = model();
    let key = SecretKey::from_seed(3, KeyOptions::default()).unwrap();
    let mut rng = ChaCha8Rng::seed_from_u64(2);
    let mut group = c.benchmark_group("mnist_cnn_forward");
    for batch in [1usize, 64] {
        let x = Array::from_shape_simple_fn(IxDyn(&[batch, 1, 28, 28]), || rng.random_range(0.0f32..1.0));
        let e = key.encrypt_tensor(&x.view()).unwrap();
        group.bench_with_input(BenchmarkId::new("plain", batch), &x, |b, x| b.iter(|| model.forward_plain(x.view())));
        group.bench_with_input(BenchmarkId::new("encrypted", batch), &e, |b, e| b.iter(|| model.forward_encrypted(e)));
    }
    group.finish();
}

criterion_group!(benches, forward);
criterion_main!(benches);
