//! Importing ONNX files: a 1 MB multilayer perceptron (`Gemm` 784 → 320 → 10 with ReLU, built here) and the
//! committed fixtures, from bytes to a checked more-nn model.

use criterion::{BenchmarkId, Criterion, criterion_group, criterion_main};
use more_onnx::sample::{int_attr, model, node, tensor};
use more_onnx::{ImportOptions, import};

/// About 1 MB of weights: 784·320 + 320·10 floats.
fn one_megabyte_mlp() -> Vec<u8> {
    let w1: Vec<f32> = (0..784 * 320).map(|i| ((i % 97) as f32 - 48.0) / 480.0).collect();
    let w2: Vec<f32> = (0..320 * 10).map(|i| ((i % 31) as f32 - 15.0) / 150.0).collect();
    let nodes = vec![
        node("Gemm", &["x", "W1", "B1"], "a", vec![int_attr("transB", 1)]),
        node("Relu", &["a"], "b", vec![]),
        node("Gemm", &["b", "W2", "B2"], "y", vec![int_attr("transB", 1)]),
    ];
    let init = vec![
        tensor("W1", &[320, 784], &w1),
        tensor("B1", &[320], &[0.0; 320]),
        tensor("W2", &[10, 320], &w2),
        tensor("B2", &[10], &[0.0; 10]),
    ];
    model(&[None, Some(784)], nodes, init, "y")
}

fn imports(c: &mut Criterion) {
    let options = ImportOptions::new("bench", "mnist");
    let mut group = c.benchmark_group("onnx_import");
    let mut files = vec![("mlp-1mb".to_string(), one_megabyte_mlp())];
    let dir = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("fixtures");
    for name in ["torch-cnn-bn", "skl-mlp-relu"] {
        files.push((name.to_string(), std::fs::read(dir.join(format!("{name}.onnx"))).unwrap()));
    }
    for (name, bytes) in &files {
        group.bench_with_input(BenchmarkId::new(name.as_str(), bytes.len()), bytes, |b, bytes| {
            b.iter(|| import(bytes, &options).unwrap())
        });
    }
    group.finish();
}

criterion_group!(benches, imports);
criterion_main!(benches);
