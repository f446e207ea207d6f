//! Cost of the coefficient-form kernel against plaintext: GEMM (Karatsuba) and lane functions, f32 and
//! f64. `cargo run --release -p more-enctrain --example kernel_cost`.

use std::time::Instant;

use more_enctrain::{Basis, CoeffTensor};
use ndarray::{Array2, ArrayD, IxDyn};

fn time<R>(reps: usize, mut f: impl FnMut() -> R) -> f64 {
    let _ = f();
    let t = Instant::now();
    for _ in 0..reps {
        std::hint::black_box(f());
    }
    t.elapsed().as_secs_f64() / reps as f64 * 1e6
}

fn run<F: more_core::Real>(name: &str) {
    let basis = Basis::from_matrix([[0.3, 0.8], [0.5, -0.3]]).unwrap();
    for &(n, k, m) in &[(64usize, 784usize, 128usize), (36_864, 25, 32), (4096, 800, 64)] {
        let a = Array2::<F>::from_shape_fn((n, k), |(i, j)| F::from_f64(((i * 7 + j * 3) % 11) as f64 / 11.0));
        let b = Array2::<F>::from_shape_fn((k, m), |(i, j)| F::from_f64(((i * 5 + j) % 13) as f64 / 13.0));
        let plain = time(5, || a.dot(&b));
        let ta = CoeffTensor::from_parts(a.clone().into_dyn(), a.clone().into_dyn(), basis).unwrap();
        let tb = CoeffTensor::from_parts(b.clone().into_dyn(), b.clone().into_dyn(), basis).unwrap();
        let enc = time(5, || ta.matmul(&tb).unwrap());
        println!("{name} gemm {n}x{k}x{m}: plain {plain:.0} us, encrypted {enc:.0} us, ratio {:.2}", enc / plain);
    }
    let x = ArrayD::<F>::from_shape_fn(IxDyn(&[64, 32, 24, 24]), |i| F::from_f64((i[3] as f64 - 12.0) / 7.0));
    let plain = time(10, || x.mapv(|v| v.max(F::zero())));
    let t = CoeffTensor::from_parts(x.clone(), x.clone(), basis).unwrap();
    let enc = time(10, || t.map_lanes(|v| v.max(F::zero())));
    println!("{name} relu 1.2M: plain {plain:.0} us, encrypted {enc:.0} us, ratio {:.2}", enc / plain);
}

fn main() {
    run::<f32>("f32");
    run::<f64>("f64");
}
