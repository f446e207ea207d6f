//! Measures decryption error of encrypt → decrypt, of a product and of ReLU, for `f32` and `f64` planes at
//! `κ(S)` = 2, 10, 100 (message and random lane uniform in `[-1, 1)`), over 100 keys × 16,384 values.
//!
//! `cargo run --release -p more-core --example precision`

use more_core::{ElementFunction, EncryptedTensor, NoiseRange, Real, SecretKey};
use ndarray::{ArrayD, IxDyn};
use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha20Rng;

fn measure<F: Real>(kappa: f64) -> [f64; 3] {
    let mut rng = ChaCha20Rng::seed_from_u64(kappa as u64);
    let mut worst = [0f64; 3];
    for _ in 0..100 {
        let key = SecretKey::with_condition_rng(kappa, NoiseRange::default(), &mut rng).unwrap();
        let n = 16_384;
        let xs: Vec<F> = (0..n).map(|_| F::from_f64(rng.random_range(-1.0..1.0))).collect();
        let ys: Vec<F> = (0..n).map(|_| F::from_f64(rng.random_range(-1.0..1.0))).collect();
        let x = ArrayD::from_shape_vec(IxDyn(&[n]), xs).unwrap();
        let y = ArrayD::from_shape_vec(IxDyn(&[n]), ys).unwrap();
        let cx: EncryptedTensor<F> = key.encrypt_tensor_with(&x.view(), &mut rng).unwrap();
        let cy = key.encrypt_tensor_with(&y.view(), &mut rng).unwrap();
        let d = key.decrypt_tensor(&cx);
        let p = key.decrypt_tensor(&cx.mul(&cy).unwrap());
        let r = key.decrypt_tensor(&cx.apply(ElementFunction::Relu).unwrap());
        for i in 0..n {
            let (a, b) = (x[i].as_f64(), y[i].as_f64());
            // relative to the value range (max |m|, |r| = 1)
            worst[0] = worst[0].max((d[i].as_f64() - a).abs());
            worst[1] = worst[1].max((p[i].as_f64() - a * b).abs());
            worst[2] = worst[2].max((r[i].as_f64() - a.max(0.0)).abs());
        }
    }
    worst
}

fn main() {
    println!("max |error| over 100 keys x 16,384 values, lanes in [-1, 1) (relative to the range)");
    println!("| κ(S) | f32 decrypt | f32 product | f32 ReLU | f64 decrypt | f64 product | f64 ReLU |");
    println!("|---|---|---|---|---|---|---|");
    for kappa in [2.0, 10.0, 100.0] {
        let a = measure::<f32>(kappa);
        let b = measure::<f64>(kappa);
        println!(
            "| {kappa} | {:.1e} | {:.1e} | {:.1e} | {:.1e} | {:.1e} | {:.1e} |",
            a[0], a[1], a[2], b[0], b[1], b[2]
        );
    }
}
