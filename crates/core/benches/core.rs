//! Micro-benchmarks of the scheme: key generation, encryption and decryption, plane arithmetic and the
//! wire format. Run with `cargo bench -p more-core`.

use criterion::{BenchmarkId, Criterion, Throughput, criterion_group, criterion_main};
use more_core::{ElementFunction, KeyOptions, SecretKey, codec};
use ndarray::{ArrayD, IxDyn};
use std::hint::black_box;

fn input(n: usize) -> ArrayD<f32> {
    ArrayD::from_shape_vec(IxDyn(&[n]), (0..n).map(|i| (i % 255) as f32 / 255.0).collect()).unwrap()
}

fn bench(c: &mut Criterion) {
    let key = SecretKey::from_seed(1, KeyOptions::default()).unwrap();
    c.bench_function("keygen (OS CSPRNG)", |b| b.iter(|| SecretKey::generate(KeyOptions::default()).unwrap()));

    let mut g = c.benchmark_group("scheme");
    for n in [784usize, 16_384] {
        let x = input(n);
        let ct = key.encrypt_tensor(&x.view()).unwrap();
        let ct2 = key.encrypt_tensor(&x.view()).unwrap();
        let bytes = codec::encode(&ct);
        g.throughput(Throughput::Elements(n as u64));
        g.bench_with_input(BenchmarkId::new("encrypt f32", n), &x, |b, x| {
            b.iter(|| key.encrypt_tensor(black_box(&x.view())).unwrap())
        });
        g.bench_with_input(BenchmarkId::new("decrypt f32", n), &ct, |b, ct| {
            b.iter(|| key.decrypt_tensor(black_box(ct)))
        });
        g.bench_with_input(BenchmarkId::new("plane add", n), &ct, |b, ct| b.iter(|| ct.add(black_box(&ct2)).unwrap()));
        g.bench_with_input(BenchmarkId::new("plane product", n), &ct, |b, ct| {
            b.iter(|| ct.mul(black_box(&ct2)).unwrap())
        });
        g.bench_with_input(BenchmarkId::new("relu (spectral)", n), &ct, |b, ct| {
            b.iter(|| ct.apply(black_box(ElementFunction::Relu)).unwrap())
        });
        g.bench_with_input(BenchmarkId::new("wire encode", n), &ct, |b, ct| b.iter(|| codec::encode(black_box(ct))));
        g.bench_with_input(BenchmarkId::new("wire decode", n), &bytes, |b, bytes| {
            b.iter(|| codec::decode::<f32>(black_box(bytes), 1 << 24).unwrap())
        });
    }
    g.finish();
}

criterion_group!(benches, bench);
criterion_main!(benches);
